// GPU test harness in TensorRT's role: loads libs6plugin.so the way IPluginRegistry::loadLibrary
// does (setLoggerFinder, getCreators / getPluginCreators), then, for each of the two plugin
// interfaces (IPluginV3 and IPluginV2DynamicExt), calls every builder-time and run-time method of
// the S6Scan and S6ScanHeads plugins in the order TensorRT does — with an IExprBuilder of its own
// for the output shapes — and runs enqueue on a real CUDA stream at two shapes of one dynamic
// profile, fp32 / fp16 / bf16. It writes every case's inputs and outputs (as f32) to OUTDIR;
// tests/trt_gpu.rs checks them against the fp64 CPU references (s6plugin::reference,
// s6plugin::reference_heads).
//
// usage: gpu_harness LIBS6PLUGIN OUTDIR       exit 0 ok, 1 failure, 77 no GPU (skip)
// CUDA is reached through the driver API (dlopen libcuda.so.1): no link-time CUDA dependency.
#include "common.h"

#include <dlfcn.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <functional>
#include <tuple>
#include <map>
#include <memory>
#include <string>
#include <vector>

using namespace nvinfer1;
using s6test::failures;

namespace {

// ---------------------------------------------------------------------------------------------
// CUDA driver API, loaded at run time.
using CUresult = int;
using CUdevice = int;
using CUcontext = void*;
using CUdeviceptr = unsigned long long;
using CUstream = cudaStream_t;

struct Cuda {
    CUresult (*cuInit)(unsigned);
    CUresult (*cuDeviceGet)(CUdevice*, int);
    CUresult (*cuDeviceGetName)(char*, int, CUdevice);
    CUresult (*cuDevicePrimaryCtxRetain)(CUcontext*, CUdevice);
    CUresult (*cuCtxSetCurrent)(CUcontext);
    CUresult (*cuStreamCreate)(CUstream*, unsigned);
    CUresult (*cuStreamSynchronize)(CUstream);
    CUresult (*cuMemAlloc)(CUdeviceptr*, size_t);
    CUresult (*cuMemFree)(CUdeviceptr);
    CUresult (*cuMemcpyHtoD)(CUdeviceptr, void const*, size_t);
    CUresult (*cuMemcpyDtoH)(void*, CUdeviceptr, size_t);
    CUresult (*cuMemsetD8)(CUdeviceptr, unsigned char, size_t);

    bool load()
    {
        void* h = dlopen("libcuda.so.1", RTLD_NOW | RTLD_GLOBAL);
        if (!h)
        {
            return false;
        }
        auto get = [&](char const* n) { return dlsym(h, n); };
        cuInit = reinterpret_cast<decltype(cuInit)>(get("cuInit"));
        cuDeviceGet = reinterpret_cast<decltype(cuDeviceGet)>(get("cuDeviceGet"));
        cuDeviceGetName = reinterpret_cast<decltype(cuDeviceGetName)>(get("cuDeviceGetName"));
        cuDevicePrimaryCtxRetain = reinterpret_cast<decltype(cuDevicePrimaryCtxRetain)>(get("cuDevicePrimaryCtxRetain"));
        cuCtxSetCurrent = reinterpret_cast<decltype(cuCtxSetCurrent)>(get("cuCtxSetCurrent"));
        cuStreamCreate = reinterpret_cast<decltype(cuStreamCreate)>(get("cuStreamCreate"));
        cuStreamSynchronize = reinterpret_cast<decltype(cuStreamSynchronize)>(get("cuStreamSynchronize"));
        cuMemAlloc = reinterpret_cast<decltype(cuMemAlloc)>(get("cuMemAlloc_v2"));
        cuMemFree = reinterpret_cast<decltype(cuMemFree)>(get("cuMemFree_v2"));
        cuMemcpyHtoD = reinterpret_cast<decltype(cuMemcpyHtoD)>(get("cuMemcpyHtoD_v2"));
        cuMemcpyDtoH = reinterpret_cast<decltype(cuMemcpyDtoH)>(get("cuMemcpyDtoH_v2"));
        cuMemsetD8 = reinterpret_cast<decltype(cuMemsetD8)>(get("cuMemsetD8_v2"));
        return cuInit && cuDeviceGet && cuDevicePrimaryCtxRetain && cuCtxSetCurrent && cuStreamCreate
            && cuStreamSynchronize && cuMemAlloc && cuMemFree && cuMemcpyHtoD && cuMemcpyDtoH && cuMemsetD8;
    }
};
Cuda cu;

#define CU(call)                                                                                                       \
    do                                                                                                                 \
    {                                                                                                                  \
        CUresult r_ = (call);                                                                                          \
        if (r_ != 0)                                                                                                   \
        {                                                                                                              \
            std::printf("FAIL CUDA %s = %d (%s:%d)\n", #call, r_, __FILE__, __LINE__);                                 \
            std::exit(1);                                                                                              \
        }                                                                                                              \
    } while (0)

// ---------------------------------------------------------------------------------------------
// (The IExprBuilder is s6test::ExprBuilder, common.h.)
using s6test::Expr;
using s6test::ExprBuilder;

// ---------------------------------------------------------------------------------------------
// Host-side dtype conversions (round to nearest even).
uint16_t toHalf(float f)
{
    uint32_t x;
    std::memcpy(&x, &f, 4);
    uint32_t const sign = (x >> 16) & 0x8000u;
    uint32_t const absx = x & 0x7fffffffu;
    if (absx >= 0x7f800000u)
    {
        return static_cast<uint16_t>(sign | 0x7c00u | (absx > 0x7f800000u ? 0x200u : 0));
    }
    if (absx >= 0x477ff000u)
    {
        return static_cast<uint16_t>(sign | 0x7c00u); // overflow to inf
    }
    if (absx < 0x38800000u)
    { // subnormal half
        float const scaled = std::fabs(f) * 16777216.0f; // 2^24
        uint32_t const m = static_cast<uint32_t>(std::nearbyint(scaled));
        return static_cast<uint16_t>(sign | m);
    }
    uint32_t const mant = absx & 0x7fffffu;
    uint32_t const exp = (absx >> 23) - 127 + 15;
    uint32_t h = (exp << 10) | (mant >> 13);
    uint32_t const rest = mant & 0x1fffu;
    if (rest > 0x1000u || (rest == 0x1000u && (h & 1u)))
    {
        ++h;
    }
    return static_cast<uint16_t>(sign | h);
}

float fromHalf(uint16_t h)
{
    uint32_t const sign = (h & 0x8000u) << 16;
    uint32_t const exp = (h >> 10) & 0x1fu;
    uint32_t const mant = h & 0x3ffu;
    float f;
    if (exp == 0)
    {
        f = std::ldexp(static_cast<float>(mant), -24);
        return sign ? -f : f;
    }
    uint32_t x;
    if (exp == 31)
    {
        x = sign | 0x7f800000u | (mant << 13);
    }
    else
    {
        x = sign | ((exp - 15 + 127) << 23) | (mant << 13);
    }
    std::memcpy(&f, &x, 4);
    return f;
}

uint16_t toBf16(float f)
{
    uint32_t x;
    std::memcpy(&x, &f, 4);
    if ((x & 0x7fffffffu) > 0x7f800000u)
    {
        return static_cast<uint16_t>((x >> 16) | 0x40u);
    }
    uint32_t const lsb = (x >> 16) & 1u;
    x += 0x7fffu + lsb;
    return static_cast<uint16_t>(x >> 16);
}

float fromBf16(uint16_t b)
{
    uint32_t x = static_cast<uint32_t>(b) << 16;
    float f;
    std::memcpy(&f, &x, 4);
    return f;
}

size_t elemSize(DataType t)
{
    return t == DataType::kFLOAT ? 4 : 2;
}

// Values (already representable in `t`) → bytes of type t.
std::vector<uint8_t> encode(std::vector<float> const& v, DataType t)
{
    std::vector<uint8_t> out(v.size() * elemSize(t));
    for (size_t i = 0; i < v.size(); ++i)
    {
        if (t == DataType::kFLOAT)
        {
            std::memcpy(&out[4 * i], &v[i], 4);
        }
        else
        {
            uint16_t const h = t == DataType::kHALF ? toHalf(v[i]) : toBf16(v[i]);
            std::memcpy(&out[2 * i], &h, 2);
        }
    }
    return out;
}

std::vector<float> decode(std::vector<uint8_t> const& b, DataType t)
{
    size_t const n = b.size() / elemSize(t);
    std::vector<float> v(n);
    for (size_t i = 0; i < n; ++i)
    {
        if (t == DataType::kFLOAT)
        {
            std::memcpy(&v[i], &b[4 * i], 4);
        }
        else
        {
            uint16_t h;
            std::memcpy(&h, &b[2 * i], 2);
            v[i] = t == DataType::kHALF ? fromHalf(h) : fromBf16(h);
        }
    }
    return v;
}

float roundTo(float f, DataType t)
{
    return t == DataType::kFLOAT ? f : (t == DataType::kHALF ? fromHalf(toHalf(f)) : fromBf16(toBf16(f)));
}

// splitmix64 → uniform [lo, hi)
struct Rng {
    uint64_t s;
    double next()
    {
        s += 0x9E3779B97F4A7C15ull;
        uint64_t z = s;
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
        z ^= z >> 31;
        return static_cast<double>(z >> 11) / 9007199254740992.0;
    }
    float uniform(float lo, float hi)
    {
        return static_cast<float>(lo + (hi - lo) * next());
    }
};

// ---------------------------------------------------------------------------------------------
// Cases.
// The two ops' fields, in contract order (docs/s6scan.md, docs/s6scan_heads.md).
std::vector<std::string> const kFieldNames = {"delta_softplus", "has_D", "has_z", "has_delta_bias",
    "has_initial_state", "has_last_state", "channels_last", "bc_channels_last"};
std::vector<std::string> const kHeadsFieldNames
    = {"dt_softplus", "has_D", "has_z", "has_dt_bias", "has_dt_limit", "has_initial_state", "has_last_state"};

// Input roles of both ops: S6Scan's u, delta, delta_bias are S6ScanHeads' x, dt, dt_bias;
// DT_LIMIT is S6ScanHeads' only.
enum Role
{
    U,
    DELTA,
    A,
    B,
    C,
    DSKIP,
    Z,
    DELTA_BIAS,
    DT_LIMIT,
    INIT
};
char const* const kRoleNames[] = {"u", "delta", "A", "B", "C", "D", "z", "delta_bias", "dt_limit", "initial_state"};
char const* const kHeadsRoleNames[] = {"x", "dt", "A", "B", "C", "D", "z", "dt_bias", "dt_limit", "initial_state"};

struct Case {
    std::string name;
    int32_t attrs[8]; // the op's field order (fieldNames())
    DataType dtype;
    // S6Scan: channels D, state N, groups G (0: rank-3 B/C). S6ScanHeads: heads H, state N,
    // groups G; headdim P below.
    int64_t dim, dstate, groups;
    // profile on (batch, L); the runs use shapes inside it
    int64_t minB, minL, maxB, maxL;
    std::vector<std::pair<int64_t, int64_t>> runs; // (batch, L)
    bool heads = false;
    int64_t headdim = 0;

    std::string opName() const
    {
        return heads ? "S6ScanHeads" : "S6Scan";
    }
    std::vector<std::string> const& fieldNames() const
    {
        return heads ? kHeadsFieldNames : kFieldNames;
    }
    int nbFields() const
    {
        return static_cast<int>(fieldNames().size());
    }
    char const* roleName(Role r) const
    {
        return heads ? kHeadsRoleNames[r] : kRoleNames[r];
    }
    bool flag(int i) const
    {
        return attrs[i] != 0;
    }
    // The first four fields mean the same in both ops: softplus, D, z, bias.
    bool softplus() const
    {
        return flag(0);
    }
    bool dtLimit() const
    {
        return heads && flag(4);
    }
    bool initialState() const
    {
        return flag(heads ? 5 : 4);
    }
    bool lastState() const
    {
        return flag(heads ? 6 : 5);
    }
    bool channelsLast() const
    {
        return !heads && flag(6);
    }
    bool bcChannelsLast() const
    {
        return !heads && flag(7);
    }
    std::vector<Role> roles() const
    {
        std::vector<Role> r{U, DELTA, A, B, C};
        if (flag(1))
            r.push_back(DSKIP);
        if (flag(2))
            r.push_back(Z);
        if (flag(3))
            r.push_back(DELTA_BIAS);
        if (dtLimit())
            r.push_back(DT_LIMIT);
        if (initialState())
            r.push_back(INIT);
        return r;
    }
    int nbOutputs() const
    {
        return lastState() ? 2 : 1;
    }
    bool activation(Role r) const
    {
        return r == U || r == DELTA || r == B || r == C || r == Z;
    }
    // Shape of an input (U: also y's; INIT: also last_state's); batch = -1, L = -2 as placeholders
    // for the symbolic dimensions.
    std::vector<int64_t> shape(Role r, int64_t batch, int64_t L) const
    {
        if (heads)
        {
            switch (r)
            {
            case U:
            case Z: return {batch, L, dim, headdim};
            case DELTA: return {batch, L, dim};
            case B:
            case C: return {batch, L, groups, dstate};
            case A:
            case DSKIP:
            case DELTA_BIAS: return {dim};
            case DT_LIMIT: return {2};
            case INIT: return {batch, dim, headdim, dstate};
            }
            return {};
        }
        switch (r)
        {
        case U:
        case DELTA:
        case Z: return channelsLast() ? std::vector<int64_t>{batch, L, dim} : std::vector<int64_t>{batch, dim, L};
        case A: return {dim, dstate};
        case B:
        case C:
            if (groups == 0)
                return bcChannelsLast() ? std::vector<int64_t>{batch, L, dstate}
                                        : std::vector<int64_t>{batch, dstate, L};
            return bcChannelsLast() ? std::vector<int64_t>{batch, L, groups, dstate}
                                    : std::vector<int64_t>{batch, groups, dstate, L};
        case DSKIP:
        case DELTA_BIAS: return {dim};
        case DT_LIMIT: return {};
        case INIT: return {batch, dim, dstate};
        }
        return {};
    }
};

Dims toDims(std::vector<int64_t> const& s)
{
    Dims d{};
    d.nbDims = static_cast<int32_t>(s.size());
    for (size_t i = 0; i < s.size(); ++i)
        d.d[i] = s[i];
    return d;
}

int64_t volume(std::vector<int64_t> const& s)
{
    int64_t v = 1;
    for (auto x : s)
        v *= x;
    return v;
}

std::string dtypeName(DataType t)
{
    return t == DataType::kFLOAT ? "f32" : (t == DataType::kHALF ? "f16" : "bf16");
}

std::vector<float> makeInput(Role r, Case const& c, size_t n, Rng& rng)
{
    std::vector<float> v(n);
    for (size_t i = 0; i < n; ++i)
    {
        float x = 0;
        switch (r)
        {
        case U: x = rng.uniform(-1.f, 1.f); break;
        case DELTA: x = c.softplus() ? rng.uniform(-4.f, 1.f) : rng.uniform(0.001f, 0.1f); break;
        case A: x = -rng.uniform(0.5f, 1.5f) * static_cast<float>(1 + (i % (c.heads ? 4 : c.dstate))); break;
        case B:
        case C: x = rng.uniform(-1.f, 1.f); break;
        case DSKIP: x = rng.uniform(-1.f, 1.f); break;
        case Z: x = rng.uniform(-3.f, 3.f); break;
        case DELTA_BIAS: x = rng.uniform(-2.f, 0.5f); break;
        case DT_LIMIT: x = i == 0 ? 0.02f : 0.6f; break; // active on both sides for these dt
        case INIT: x = rng.uniform(-1.f, 1.f); break;
        }
        v[i] = c.activation(r) ? roundTo(x, c.dtype) : x;
    }
    return v;
}

void writeFloats(std::string const& path, std::vector<float> const& v)
{
    std::ofstream f(path, std::ios::binary);
    f.write(reinterpret_cast<char const*>(v.data()), static_cast<std::streamsize>(v.size() * 4));
}

PluginTensorDesc desc(std::vector<int64_t> const& s, DataType t)
{
    PluginTensorDesc d{};
    d.dims = toDims(s);
    d.type = t;
    d.format = TensorFormat::kLINEAR;
    d.scale = 1.f;
    return d;
}

// Output y: exactly the first input's dimension expressions (no arithmetic).
bool sameExprs(DimsExprs const& got, DimsExprs const& want)
{
    bool ok = got.nbDims == want.nbDims;
    for (int32_t k = 0; ok && k < got.nbDims; ++k)
        ok = got.d[k] == want.d[k];
    return ok;
}

// Output last_state: the symbolic batch, then the state's constant sizes (S6Scan (D, N),
// S6ScanHeads (H, P, N)).
bool isStateShape(DimsExprs const& got, Case const& c, IDimensionExpr const* batchSym)
{
    std::vector<int64_t> const want = c.shape(INIT, -1, -2);
    bool ok = got.nbDims == static_cast<int32_t>(want.size()) && got.nbDims > 0 && got.d[0] == batchSym;
    for (int32_t k = 1; ok && k < got.nbDims; ++k)
        ok = got.d[k]->isConstant() && got.d[k]->getConstantValue() == want[k];
    return ok;
}

// ---------------------------------------------------------------------------------------------
// What both interfaces do per run shape: the runtime shape change, the workspace, inputs on the
// device, enqueue on the stream, outputs back, and one refused enqueue (a null input).
struct RuntimeOps {
    std::function<int32_t(std::vector<DynamicPluginTensorDesc> const&, std::vector<DynamicPluginTensorDesc> const&)>
        shapeChange;
    std::function<size_t(std::vector<PluginTensorDesc> const&, std::vector<PluginTensorDesc> const&)> workspace;
    std::function<int32_t(PluginTensorDesc const*, PluginTensorDesc const*, void const* const*, void* const*, void*)>
        enqueue;
};

using DynDescFn = std::function<std::pair<std::vector<DynamicPluginTensorDesc>, std::vector<DynamicPluginTensorDesc>>(
    int64_t, int64_t, int64_t, int64_t, int64_t, int64_t)>;

void runShapes(Case const& c, std::string const& iface, std::vector<Role> const& roles,
    std::vector<DataType> const& inTypes, DynDescFn const& dynDescs, size_t wsMax, RuntimeOps const& ops,
    std::string const& outDir, s6test::RecordingLogger& logger, CUstream stream)
{
    int const nbIn = static_cast<int>(roles.size());
    int const nbOut = c.nbOutputs();
    DataType const act = c.dtype;
    int runIndex = 0;
    for (auto [batch, L] : c.runs)
    {
        auto [ins, outs] = dynDescs(batch, L, c.minB, c.minL, c.maxB, c.maxL);
        S6_CHECK(ops.shapeChange(ins, outs) == 0, "%s runtime shape (batch %lld, L %lld) accepted", iface.c_str(),
            static_cast<long long>(batch), static_cast<long long>(L));
        std::vector<PluginTensorDesc> inD(nbIn), outD(nbOut);
        for (int i = 0; i < nbIn; ++i)
            inD[i] = ins[i].desc;
        for (int i = 0; i < nbOut; ++i)
            outD[i] = outs[i].desc;
        size_t const ws = ops.workspace(inD, outD);
        S6_CHECK(ws <= wsMax, "workspace %zu within the build-time %zu", ws, wsMax);

        Rng rng{0x5eed0000ull + static_cast<uint64_t>(runIndex) * 7919ull + std::hash<std::string>{}(c.name) % 1000};
        std::string const stem = outDir + "/" + iface + "_" + c.name + "_run" + std::to_string(runIndex);
        std::ofstream meta(stem + ".txt");
        meta << "op " << c.opName() << "\nattrs";
        for (int i = 0; i < c.nbFields(); ++i)
            meta << ' ' << c.attrs[i];
        meta << "\ndtype " << dtypeName(act) << "\n";
        std::vector<CUdeviceptr> inPtrs(nbIn), outPtrs(nbOut);
        for (int i = 0; i < nbIn; ++i)
        {
            std::vector<int64_t> s = c.shape(roles[i], batch, L);
            std::vector<float> v = makeInput(roles[i], c, static_cast<size_t>(volume(s)), rng);
            writeFloats(stem + ".in" + std::to_string(i) + ".f32", v);
            meta << "input " << c.roleName(roles[i]);
            for (auto x : s)
                meta << ' ' << x;
            meta << "\n";
            std::vector<uint8_t> bytes = encode(v, inTypes[i]);
            CU(cu.cuMemAlloc(&inPtrs[i], bytes.size() + 16));
            CU(cu.cuMemcpyHtoD(inPtrs[i], bytes.data(), bytes.size()));
        }
        std::vector<size_t> outBytes(nbOut);
        for (int o = 0; o < nbOut; ++o)
        {
            std::vector<int64_t> s = o == 0 ? c.shape(U, batch, L) : c.shape(INIT, batch, L);
            outBytes[o] = static_cast<size_t>(volume(s)) * elemSize(outD[o].type);
            CU(cu.cuMemAlloc(&outPtrs[o], outBytes[o] + 16));
            CU(cu.cuMemsetD8(outPtrs[o], 0xFF, outBytes[o])); // NaN fill: unwritten outputs show
            meta << "output " << (o == 0 ? "y" : "last_state");
            for (auto x : s)
                meta << ' ' << x;
            meta << "\n";
        }
        CUdeviceptr wsPtr = 0;
        if (ws > 0)
            CU(cu.cuMemAlloc(&wsPtr, ws));
        std::vector<void const*> inArr(nbIn);
        std::vector<void*> outArr(nbOut);
        for (int i = 0; i < nbIn; ++i)
            inArr[i] = reinterpret_cast<void const*>(inPtrs[i]);
        for (int o = 0; o < nbOut; ++o)
            outArr[o] = reinterpret_cast<void*>(outPtrs[o]);
        int32_t const status
            = ops.enqueue(inD.data(), outD.data(), inArr.data(), outArr.data(), reinterpret_cast<void*>(wsPtr));
        S6_CHECK(status == 0, "enqueue (batch %lld, L %lld) status %d", static_cast<long long>(batch),
            static_cast<long long>(L), status);
        CU(cu.cuStreamSynchronize(stream));
        for (int o = 0; o < nbOut; ++o)
        {
            std::vector<uint8_t> bytes(outBytes[o]);
            CU(cu.cuMemcpyDtoH(bytes.data(), outPtrs[o], bytes.size()));
            writeFloats(stem + ".out" + std::to_string(o) + ".f32", decode(bytes, outD[o].type));
        }
        // A required input missing: enqueue must refuse (non-zero), log, not crash.
        if (runIndex == 0)
        {
            std::vector<void const*> holes = inArr;
            holes[1] = nullptr;
            size_t mark = logger.count();
            int32_t const bad
                = ops.enqueue(inD.data(), outD.data(), holes.data(), outArr.data(), reinterpret_cast<void*>(wsPtr));
            S6_CHECK(bad != 0 && logger.saw(mark, {c.name, "enqueue"}), "enqueue with a null delta refused (%d)", bad);
        }
        for (auto p : inPtrs)
            CU(cu.cuMemFree(p));
        for (auto p : outPtrs)
            CU(cu.cuMemFree(p));
        if (wsPtr)
            CU(cu.cuMemFree(wsPtr));
        std::printf("   run %d: batch %lld L %lld written to %s.*\n", runIndex, static_cast<long long>(batch),
            static_cast<long long>(L), stem.c_str());
        ++runIndex;
    }
}

// One case through IPluginV2DynamicExt: build phase, serialize, runtime phase at each run shape.
void runCaseV2(IPluginCreator& creator, Case const& c, std::string const& outDir, s6test::RecordingLogger& logger,
    CUstream stream)
{
    std::printf("== case %s (%s)\n", c.name.c_str(), dtypeName(c.dtype).c_str());
    std::vector<Role> const roles = c.roles();
    int const nbIn = static_cast<int>(roles.size());
    int const nbOut = c.nbOutputs();
    DataType const act = c.dtype;

    // ---- parser: fields exactly as the ONNX parser passes INT attributes ----
    std::vector<PluginField> fields;
    for (int i = 0; i < c.nbFields(); ++i)
        fields.emplace_back(c.fieldNames()[i].c_str(), &c.attrs[i], PluginFieldType::kINT32, 1);
    PluginFieldCollection fc{static_cast<int32_t>(fields.size()), fields.data()};
    IPluginV2* created = creator.createPlugin(c.name.c_str(), &fc);
    S6_CHECK(created != nullptr, "createPlugin");
    if (!created)
        return;
    auto* net = static_cast<IPluginV2DynamicExt*>(created);
    net->setPluginNamespace("");

    // ---- builder: network-level queries ----
    S6_CHECK(net->getNbOutputs() == nbOut, "getNbOutputs %d", net->getNbOutputs());
    std::vector<DataType> inTypes;
    for (Role r : roles)
        inTypes.push_back(c.activation(r) ? act : DataType::kFLOAT);
    S6_CHECK(net->getOutputDataType(0, inTypes.data(), nbIn) == act, "y dtype");
    if (nbOut == 2)
        S6_CHECK(net->getOutputDataType(1, inTypes.data(), nbIn) == DataType::kFLOAT, "last_state dtype");

    ExprBuilder eb;
    Expr const* batchSym = eb.impl.make("batch", false, -1);
    Expr const* lenSym = eb.impl.make("L", false, -1);
    std::vector<DimsExprs> inExprs;
    for (Role r : roles)
    {
        std::vector<int64_t> s = c.shape(r, -1, -2);
        DimsExprs e{};
        e.nbDims = static_cast<int32_t>(s.size());
        for (size_t k = 0; k < s.size(); ++k)
        {
            e.d[k] = s[k] == -1 ? static_cast<IDimensionExpr const*>(batchSym)
                : s[k] == -2    ? static_cast<IDimensionExpr const*>(lenSym)
                                : eb.constant(s[k]);
        }
        inExprs.push_back(e);
    }
    DimsExprs y = net->getOutputDimensions(0, inExprs.data(), nbIn, eb);
    S6_CHECK(sameExprs(y, inExprs[0]), "y dims are the first input's dim expressions");
    if (nbOut == 2)
    {
        DimsExprs s = net->getOutputDimensions(1, inExprs.data(), nbIn, eb);
        S6_CHECK(isStateShape(s, c, batchSym), "last_state dims are the state's (batch, then constants)");
    }
    S6_CHECK(net->getOutputDimensions(nbOut, inExprs.data(), nbIn, eb).nbDims == -1, "bad output index refused");

    // ---- builder: the layer's plugin is a clone ----
    IPluginV2DynamicExt* bld = net->clone();
    S6_CHECK(bld != nullptr, "clone");
    if (!bld)
        return;

    // ---- builder: format negotiation, position by position ----
    std::vector<PluginTensorDesc> io(nbIn + nbOut);
    std::vector<std::vector<int64_t>> optShapes;
    for (int i = 0; i < nbIn; ++i)
        optShapes.push_back(c.shape(roles[i], c.maxB, c.maxL));
    DataType const candidates[] = {DataType::kFLOAT, DataType::kHALF, DataType::kBF16, DataType::kINT8, DataType::kINT32};
    for (int pos = 0; pos < nbIn + nbOut; ++pos)
    {
        bool const isAct = pos < nbIn ? c.activation(roles[pos]) : pos == nbIn;
        DataType const want = isAct ? act : DataType::kFLOAT;
        io[pos] = desc(pos < nbIn ? optShapes[pos] : std::vector<int64_t>{1, 1, 1}, want);
        std::string supported;
        for (DataType t : candidates)
        {
            for (TensorFormat f : {TensorFormat::kLINEAR, TensorFormat::kCHW32})
            {
                PluginTensorDesc saved = io[pos];
                io[pos].type = t;
                io[pos].format = f;
                if (bld->supportsFormatCombination(pos, io.data(), nbIn, nbOut))
                    supported += dtypeName(t) + (f == TensorFormat::kLINEAR ? "/linear " : "/chw32 ");
                io[pos] = saved;
            }
        }
        std::string const expected = pos == 0 ? "f32/linear f16/linear bf16/linear " : dtypeName(want) + "/linear ";
        S6_CHECK(supported == expected, "pos %d supports [%s], expected [%s]", pos, supported.c_str(), expected.c_str());
    }

    // ---- builder: configure with the profile, workspace, a timing run, serialize ----
    DynDescFn dynDescs = [&](int64_t b, int64_t l, int64_t minB, int64_t minL, int64_t maxB, int64_t maxL) {
        std::vector<DynamicPluginTensorDesc> ins(nbIn), outs(nbOut);
        for (int i = 0; i < nbIn; ++i)
        {
            ins[i].desc = desc(c.shape(roles[i], b, l), inTypes[i]);
            ins[i].min = toDims(c.shape(roles[i], minB, minL));
            ins[i].max = toDims(c.shape(roles[i], maxB, maxL));
            ins[i].opt = ins[i].max;
        }
        outs[0].desc = desc(c.shape(U, b, l), act);
        outs[0].min = toDims(c.shape(U, minB, minL));
        outs[0].max = toDims(c.shape(U, maxB, maxL));
        if (nbOut == 2)
        {
            outs[1].desc = desc(c.shape(INIT, b, l), DataType::kFLOAT);
            outs[1].min = toDims(c.shape(INIT, minB, minL));
            outs[1].max = toDims(c.shape(INIT, maxB, maxL));
        }
        return std::make_pair(ins, outs);
    };
    {
        auto [ins, outs] = dynDescs(-1, -1, c.minB, c.minL, c.maxB, c.maxL);
        size_t mark = logger.count();
        bld->configurePlugin(ins.data(), nbIn, outs.data(), nbOut);
        S6_CHECK(!logger.saw(mark, {"S6Scan"}), "configurePlugin with the profile logs no error");
        // A wrong configuration is reported through the logger, naming the layer and tensor.
        auto [badIns, badOuts] = dynDescs(-1, -1, c.minB, c.minL, c.maxB, c.maxL);
        badIns[2].desc.type = act == DataType::kFLOAT ? DataType::kHALF : act; // A must be fp32
        mark = logger.count();
        IPluginV2DynamicExt* probe = bld->clone();
        probe->configurePlugin(badIns.data(), nbIn, badOuts.data(), nbOut);
        S6_CHECK(logger.saw(mark, {c.name, "configurePlugin", "A"}), "bad A dtype logged with layer and tensor");
        probe->destroy();
    }
    std::vector<PluginTensorDesc> maxIn(nbIn), maxOut(nbOut);
    for (int i = 0; i < nbIn; ++i)
        maxIn[i] = desc(c.shape(roles[i], c.maxB, c.maxL), inTypes[i]);
    maxOut[0] = desc(c.shape(U, c.maxB, c.maxL), act);
    if (nbOut == 2)
        maxOut[1] = desc(c.shape(INIT, c.maxB, c.maxL), DataType::kFLOAT);
    size_t const wsMax = bld->getWorkspaceSize(maxIn.data(), nbIn, maxOut.data(), nbOut);
    std::printf("   workspace at max shapes: %zu bytes\n", wsMax);
    S6_CHECK(bld->initialize() == 0, "initialize");
    size_t const blobSize = bld->getSerializationSize();
    std::vector<uint8_t> blob(blobSize);
    bld->serialize(blob.data());
    S6_CHECK(blobSize > 0, "serialization size");
    bld->terminate();
    bld->destroy();
    net->destroy();

    // ---- runtime: deserialize from the engine blob, execution context clone ----
    IPluginV2* des = creator.deserializePlugin(c.name.c_str(), blob.data(), blob.size());
    S6_CHECK(des != nullptr, "deserializePlugin");
    if (!des)
        return;
    auto* rtBase = static_cast<IPluginV2DynamicExt*>(des);
    rtBase->setPluginNamespace("");
    IPluginV2DynamicExt* rt = rtBase->clone();
    S6_CHECK(rt != nullptr && rt->initialize() == 0, "runtime clone + initialize");
    if (!rt)
        return;

    RuntimeOps ops;
    ops.shapeChange = [&](std::vector<DynamicPluginTensorDesc> const& ins, std::vector<DynamicPluginTensorDesc> const& outs) {
        size_t const mark = logger.count();
        rt->configurePlugin(ins.data(), nbIn, outs.data(), nbOut);
        return logger.saw(mark, {"S6Scan"}) ? 1 : 0;
    };
    ops.workspace = [&](std::vector<PluginTensorDesc> const& inD, std::vector<PluginTensorDesc> const& outD) {
        return rt->getWorkspaceSize(inD.data(), nbIn, outD.data(), nbOut);
    };
    ops.enqueue = [&](PluginTensorDesc const* inD, PluginTensorDesc const* outD, void const* const* in,
                      void* const* out, void* ws) { return rt->enqueue(inD, outD, in, out, ws, stream); };
    runShapes(c, "v2", roles, inTypes, dynDescs, wsMax, ops, outDir, logger, stream);
    rt->terminate();
    rt->destroy();
    rtBase->destroy();
}


// One case through IPluginV3 in TensorRT's order: createPlugin(kBUILD), the build capability's
// queries (getOutputDataTypes, getOutputShapes through the IExprBuilder, supportsFormatCombination,
// configurePlugin, getWorkspaceSize), getFieldsToSerialize into the "engine"; then
// createPlugin(kRUNTIME) from those fields, attachToContext, and per shape onShapeChange + enqueue.
void runCaseV3(IPluginCreatorV3One& creator, Case const& c, std::string const& outDir,
    s6test::RecordingLogger& logger, CUstream stream)
{
    std::printf("== case %s (%s, IPluginV3)\n", c.name.c_str(), dtypeName(c.dtype).c_str());
    std::vector<Role> const roles = c.roles();
    int const nbIn = static_cast<int>(roles.size());
    int const nbOut = c.nbOutputs();
    DataType const act = c.dtype;
    auto caps = [](IPluginV3* p) {
        return std::make_tuple(static_cast<IPluginV3OneCore*>(p->getCapabilityInterface(PluginCapabilityType::kCORE)),
            static_cast<IPluginV3OneBuild*>(p->getCapabilityInterface(PluginCapabilityType::kBUILD)),
            static_cast<IPluginV3OneRuntime*>(p->getCapabilityInterface(PluginCapabilityType::kRUNTIME)));
    };

    std::vector<PluginField> fields;
    for (int i = 0; i < c.nbFields(); ++i)
        fields.emplace_back(c.fieldNames()[i].c_str(), &c.attrs[i], PluginFieldType::kINT32, 1);
    PluginFieldCollection fc{static_cast<int32_t>(fields.size()), fields.data()};
    std::unique_ptr<IPluginV3> net(creator.createPlugin(c.name.c_str(), &fc, TensorRTPhase::kBUILD));
    S6_CHECK(net != nullptr, "createPlugin(kBUILD)");
    if (!net)
        return;
    auto [core, build, runtime] = caps(net.get());
    S6_CHECK(core && build && runtime, "capabilities");
    if (!(core && build && runtime))
        return;
    S6_CHECK(core->getPluginName() == c.opName(), "core name %s", core->getPluginName());

    S6_CHECK(build->getNbOutputs() == nbOut, "getNbOutputs %d", build->getNbOutputs());
    std::vector<DataType> inTypes;
    for (Role r : roles)
        inTypes.push_back(c.activation(r) ? act : DataType::kFLOAT);
    std::vector<DataType> outTypes(nbOut, DataType::kINT8);
    S6_CHECK(build->getOutputDataTypes(outTypes.data(), nbOut, inTypes.data(), nbIn) == 0 && outTypes[0] == act
            && (nbOut == 1 || outTypes[1] == DataType::kFLOAT),
        "output types");

    ExprBuilder eb;
    Expr const* batchSym = eb.impl.make("batch", false, -1);
    Expr const* lenSym = eb.impl.make("L", false, -1);
    std::vector<DimsExprs> inExprs;
    for (Role r : roles)
    {
        std::vector<int64_t> sh = c.shape(r, -1, -2);
        DimsExprs e{};
        e.nbDims = static_cast<int32_t>(sh.size());
        for (size_t k = 0; k < sh.size(); ++k)
        {
            e.d[k] = sh[k] == -1 ? static_cast<IDimensionExpr const*>(batchSym)
                : sh[k] == -2    ? static_cast<IDimensionExpr const*>(lenSym)
                                 : eb.constant(sh[k]);
        }
        inExprs.push_back(e);
    }
    std::vector<DimsExprs> outExprs(nbOut);
    S6_CHECK(build->getOutputShapes(inExprs.data(), nbIn, nullptr, 0, outExprs.data(), nbOut, eb) == 0,
        "getOutputShapes");
    S6_CHECK(sameExprs(outExprs[0], inExprs[0]), "y dims are the first input's dim expressions");
    if (nbOut == 2)
    {
        S6_CHECK(isStateShape(outExprs[1], c, batchSym), "last_state dims are the state's (batch, then constants)");
    }
    std::vector<DimsExprs> tooFew(nbOut + 1);
    S6_CHECK(build->getOutputShapes(inExprs.data(), nbIn, nullptr, 0, tooFew.data(), nbOut + 1, eb) != 0,
        "a wrong output count refused");

    std::unique_ptr<IPluginV3> bldPlugin(net->clone());
    S6_CHECK(bldPlugin != nullptr, "clone");
    if (!bldPlugin)
        return;
    auto [bcore, bld, brt] = caps(bldPlugin.get());
    (void) bcore;
    (void) brt;

    DynDescFn dynDescs = [&](int64_t b, int64_t l, int64_t minB, int64_t minL, int64_t maxB, int64_t maxL) {
        std::vector<DynamicPluginTensorDesc> ins(nbIn), outs(nbOut);
        for (int i = 0; i < nbIn; ++i)
        {
            ins[i].desc = desc(c.shape(roles[i], b, l), inTypes[i]);
            ins[i].min = toDims(c.shape(roles[i], minB, minL));
            ins[i].max = toDims(c.shape(roles[i], maxB, maxL));
            ins[i].opt = ins[i].max;
        }
        outs[0].desc = desc(c.shape(U, b, l), act);
        outs[0].min = toDims(c.shape(U, minB, minL));
        outs[0].max = toDims(c.shape(U, maxB, maxL));
        outs[0].opt = outs[0].max;
        if (nbOut == 2)
        {
            outs[1].desc = desc(c.shape(INIT, b, l), DataType::kFLOAT);
            outs[1].min = toDims(c.shape(INIT, minB, minL));
            outs[1].max = toDims(c.shape(INIT, maxB, maxL));
            outs[1].opt = outs[1].max;
        }
        return std::make_pair(ins, outs);
    };

    // Format negotiation, position by position, on dynamic descriptors of the profile.
    {
        auto [ins, outs] = dynDescs(-1, -1, c.minB, c.minL, c.maxB, c.maxL);
        std::vector<DynamicPluginTensorDesc> io(ins);
        io.insert(io.end(), outs.begin(), outs.end());
        DataType const candidates[]
            = {DataType::kFLOAT, DataType::kHALF, DataType::kBF16, DataType::kINT8, DataType::kINT32};
        for (int pos = 0; pos < nbIn + nbOut; ++pos)
        {
            bool const isAct = pos < nbIn ? c.activation(roles[pos]) : pos == nbIn;
            DataType const want = isAct ? act : DataType::kFLOAT;
            std::string supported;
            for (DataType t : candidates)
            {
                for (TensorFormat f : {TensorFormat::kLINEAR, TensorFormat::kCHW32})
                {
                    DynamicPluginTensorDesc saved = io[pos];
                    io[pos].desc.type = t;
                    io[pos].desc.format = f;
                    if (bld->supportsFormatCombination(pos, io.data(), nbIn, nbOut))
                        supported += dtypeName(t) + (f == TensorFormat::kLINEAR ? "/linear " : "/chw32 ");
                    io[pos] = saved;
                }
            }
            io[pos].desc.type = want;
            std::string const expected
                = pos == 0 ? "f32/linear f16/linear bf16/linear " : dtypeName(want) + "/linear ";
            S6_CHECK(
                supported == expected, "pos %d supports [%s], expected [%s]", pos, supported.c_str(), expected.c_str());
        }
    }
    size_t wsMax = 0;
    {
        auto [ins, outs] = dynDescs(-1, -1, c.minB, c.minL, c.maxB, c.maxL);
        size_t mark = logger.count();
        S6_CHECK(bld->configurePlugin(ins.data(), nbIn, outs.data(), nbOut) == 0 && !logger.saw(mark, {"S6Scan"}),
            "configurePlugin with the profile");
        auto [badIns, badOuts] = dynDescs(-1, -1, c.minB, c.minL, c.maxB, c.maxL);
        badIns[2].desc.type = act == DataType::kFLOAT ? DataType::kHALF : act; // A must be fp32
        mark = logger.count();
        std::unique_ptr<IPluginV3> probe(bldPlugin->clone());
        auto* probeBuild = static_cast<IPluginV3OneBuild*>(probe->getCapabilityInterface(PluginCapabilityType::kBUILD));
        S6_CHECK(probeBuild->configurePlugin(badIns.data(), nbIn, badOuts.data(), nbOut) != 0
                && logger.saw(mark, {c.name, "configurePlugin", "A"}),
            "bad A dtype refused and logged with layer and tensor");
        wsMax = bld->getWorkspaceSize(ins.data(), nbIn, outs.data(), nbOut);
        std::printf("   workspace for the profile: %zu bytes\n", wsMax);
    }
    // The engine keeps the fields.
    auto* bldRt = static_cast<IPluginV3OneRuntime*>(bldPlugin->getCapabilityInterface(PluginCapabilityType::kRUNTIME));
    PluginFieldCollection const* stored = bldRt->getFieldsToSerialize();
    int const nbFields = c.nbFields();
    S6_CHECK(stored && stored->nbFields == nbFields, "getFieldsToSerialize");
    if (!stored || stored->nbFields != nbFields)
        return;
    std::vector<int32_t> values(nbFields);
    std::vector<std::string> names(nbFields);
    for (int i = 0; i < nbFields; ++i)
    {
        names[i] = stored->fields[i].name;
        values[i] = *static_cast<int32_t const*>(stored->fields[i].data);
        S6_CHECK(values[i] == c.attrs[i] && names[i] == c.fieldNames()[i], "stored field %d", i);
    }
    bldPlugin.reset();
    net.reset();

    // ---- runtime: from the engine's fields, the execution context's copy ----
    std::vector<PluginField> engineFields;
    for (int i = 0; i < nbFields; ++i)
        engineFields.emplace_back(names[i].c_str(), &values[i], PluginFieldType::kINT32, 1);
    PluginFieldCollection efc{nbFields, engineFields.data()};
    std::unique_ptr<IPluginV3> des(creator.createPlugin(c.name.c_str(), &efc, TensorRTPhase::kRUNTIME));
    S6_CHECK(des != nullptr, "createPlugin(kRUNTIME) from the engine's fields");
    if (!des)
        return;
    auto* desRt = static_cast<IPluginV3OneRuntime*>(des->getCapabilityInterface(PluginCapabilityType::kRUNTIME));
    std::unique_ptr<IPluginV3> ctxPlugin(desRt->attachToContext(nullptr));
    S6_CHECK(ctxPlugin != nullptr, "attachToContext");
    if (!ctxPlugin)
        return;
    auto* rt = static_cast<IPluginV3OneRuntime*>(ctxPlugin->getCapabilityInterface(PluginCapabilityType::kRUNTIME));
    auto* rtBuild = static_cast<IPluginV3OneBuild*>(ctxPlugin->getCapabilityInterface(PluginCapabilityType::kBUILD));

    RuntimeOps ops;
    ops.shapeChange = [&](std::vector<DynamicPluginTensorDesc> const& ins, std::vector<DynamicPluginTensorDesc> const& outs) {
        std::vector<PluginTensorDesc> inD(nbIn), outD(nbOut);
        for (int i = 0; i < nbIn; ++i)
            inD[i] = ins[i].desc;
        for (int i = 0; i < nbOut; ++i)
            outD[i] = outs[i].desc;
        return rt->onShapeChange(inD.data(), nbIn, outD.data(), nbOut);
    };
    // TensorRT hands enqueue the build-time workspace; check that the exact shape needs no more.
    ops.workspace = [&](std::vector<PluginTensorDesc> const& inD, std::vector<PluginTensorDesc> const& outD) {
        std::vector<DynamicPluginTensorDesc> ins(nbIn), outs(nbOut);
        for (int i = 0; i < nbIn; ++i)
        {
            ins[i].desc = inD[i];
            ins[i].min = ins[i].max = ins[i].opt = inD[i].dims;
        }
        for (int i = 0; i < nbOut; ++i)
        {
            outs[i].desc = outD[i];
            outs[i].min = outs[i].max = outs[i].opt = outD[i].dims;
        }
        size_t const exact = rtBuild->getWorkspaceSize(ins.data(), nbIn, outs.data(), nbOut);
        S6_CHECK(exact <= wsMax, "exact-shape workspace %zu within the profile's %zu", exact, wsMax);
        return wsMax;
    };
    ops.enqueue = [&](PluginTensorDesc const* inD, PluginTensorDesc const* outD, void const* const* in,
                      void* const* out, void* ws) { return rt->enqueue(inD, outD, in, out, ws, stream); };
    runShapes(c, "v3", roles, inTypes, dynDescs, wsMax, ops, outDir, logger, stream);
}
} // namespace

int main(int argc, char** argv)
{
    if (argc != 3)
    {
        std::fprintf(stderr, "usage: %s LIBS6PLUGIN OUTDIR\n", argv[0]);
        return 2;
    }
    if (!cu.load() || cu.cuInit(0) != 0)
    {
        std::printf("SKIP: no CUDA driver or no GPU\n");
        return 77;
    }
    CUdevice dev;
    if (cu.cuDeviceGet(&dev, 0) != 0)
    {
        std::printf("SKIP: no CUDA device\n");
        return 77;
    }
    char name[256] = {};
    if (cu.cuDeviceGetName)
        cu.cuDeviceGetName(name, sizeof name, dev);
    std::printf("device: %s\n", name);
    CUcontext ctx;
    CU(cu.cuDevicePrimaryCtxRetain(&ctx, dev));
    CU(cu.cuCtxSetCurrent(ctx));
    CUstream stream;
    CU(cu.cuStreamCreate(&stream, 1 /* CU_STREAM_NON_BLOCKING */));

    // What IPluginRegistry::loadLibrary does: dlopen, setLoggerFinder, getCreators.
    void* lib = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
    if (!lib)
    {
        std::printf("FAIL dlopen %s: %s\n", argv[1], dlerror());
        return 1;
    }
    s6test::RecordingLogger logger;
    s6test::Finder finder(&logger);
    auto setFinder = reinterpret_cast<void (*)(ILoggerFinder*)>(dlsym(lib, "setLoggerFinder"));
    using GetList = IPluginCreatorInterface* const* (*) (int32_t*);
    auto getCreators = reinterpret_cast<GetList>(dlsym(lib, "getCreators"));
    auto getPluginCreators = reinterpret_cast<GetList>(dlsym(lib, "getPluginCreators"));
    S6_CHECK(setFinder && getCreators && getPluginCreators, "exports present");
    if (!setFinder || !getCreators || !getPluginCreators)
        return 1;
    setFinder(&finder);
    // Both ops' creators, S6Scan first.
    int32_t n = 0;
    IPluginCreatorInterface* const* list = getCreators(&n);
    S6_CHECK(n == 2 && list, "getCreators: two IPluginCreatorV3One (%d)", n);
    std::map<std::string, IPluginCreatorV3One*> v3;
    for (int32_t i = 0; list && i < n; ++i)
    {
        if (list[i] && std::strcmp(list[i]->getInterfaceInfo().kind, "PLUGIN CREATOR_V3ONE") == 0)
        {
            auto* c = static_cast<IPluginCreatorV3One*>(list[i]);
            S6_CHECK(std::strcmp(c->getPluginVersion(), "1") == 0, "%s v1 (V3)", c->getPluginName());
            v3[c->getPluginName()] = c;
        }
    }
    S6_CHECK(v3.count("S6Scan") && v3.count("S6ScanHeads"), "S6Scan and S6ScanHeads V3 creators");
    if (!v3.count("S6Scan") || !v3.count("S6ScanHeads"))
        return 1;
    int32_t n2 = 0;
    IPluginCreatorInterface* const* list2 = getPluginCreators(&n2);
    std::map<std::string, IPluginCreator*> v2;
    for (int32_t i = 0; list2 && i < n2; ++i)
    {
        IPluginCreator* c = reinterpret_cast<IPluginCreator* const*>(list2)[i];
        if (c)
            v2[c->getPluginName()] = c;
    }
    S6_CHECK(v2.size() == 2 || n2 == 0, "getPluginCreators: both IPluginV2DynamicExt creators, or none (%d)", n2);
    S6_CHECK(!v2.empty(), "getPluginCreators: the IPluginV2DynamicExt creators (TensorRT 8.x/10.x builds)");

    //                           sp D  z  db is ls cl bcl
    std::vector<Case> cases = {
        {"all_f32_grouped", {1, 1, 1, 1, 1, 1, 0, 0}, DataType::kFLOAT, 80, 16, 2, 1, 1, 4, 512, {{1, 1}, {3, 257}, {2, 512}}},
        {"minimal_f32", {0, 0, 0, 0, 0, 0, 0, 0}, DataType::kFLOAT, 64, 16, 0, 1, 1, 2, 300, {{2, 300}, {1, 33}}},
        {"gate_f16", {1, 1, 1, 1, 0, 1, 0, 0}, DataType::kHALF, 96, 16, 0, 1, 1, 2, 1024, {{1, 1}, {2, 1000}}},
        {"chlast_f16", {1, 1, 1, 1, 1, 1, 1, 1}, DataType::kHALF, 72, 8, 3, 1, 1, 2, 256, {{2, 129}, {1, 1}}},
        {"chlast_bf16", {0, 1, 0, 0, 1, 1, 1, 1}, DataType::kBF16, 64, 16, 0, 1, 1, 2, 512, {{2, 511}, {1, 1}}},
        {"gate_bf16_grouped", {1, 1, 1, 1, 0, 0, 0, 0}, DataType::kBF16, 128, 16, 4, 1, 1, 2, 2048, {{1, 2048}, {2, 7}}},
        // S6ScanHeads (Mamba2): H heads of P, groups G, state N; the Mamba2 export's flags, and
        // every flag with a decode step.
        //                         sp D  z  db dl is ls
        {"heads_mamba2_f32", {1, 1, 0, 1, 1, 0, 1}, DataType::kFLOAT, 8, 16, 2, 1, 1, 2, 300, {{2, 300}, {1, 37}},
            true, 16},
        {"heads_all_f16", {1, 1, 1, 1, 1, 1, 1}, DataType::kHALF, 4, 8, 1, 1, 1, 2, 130, {{2, 130}, {1, 1}}, true,
            32},
        {"heads_plain_bf16", {0, 0, 0, 0, 0, 0, 0}, DataType::kBF16, 6, 16, 3, 1, 1, 2, 64, {{2, 64}, {1, 9}}, true,
            8},
    };
    for (Case const& c : cases)
    {
        runCaseV3(*v3[c.opName()], c, argv[2], logger, stream);
        if (v2.count(c.opName()))
            runCaseV2(*v2[c.opName()], c, argv[2], logger, stream);
    }
    std::printf("harness: %d failure(s)\n", failures());
    return failures() == 0 ? 0 : 1;
}
