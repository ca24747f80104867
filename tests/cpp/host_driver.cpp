// CI test driver (no GPU): a real TensorRT (the TensorRT 10.16 lean runtime, or TensorRT-RTX 1.7)
// loads libs6plugin.so the ways applications do, with TensorRT's OWN logger finder, and uses the
// S6Scan and S6ScanHeads creators as TensorRT and its ONNX parser do. tests/trt_registry.rs runs it once per mode
// and once per refusal case, each in a process of its own, so that an abort fails that case.
//
// Built against the headers of the TensorRT it drives. With -DS6_LINKED it is linked against that
// TensorRT (as an application links it, global symbols); without, it dlopens TRTLIB privately
// (RTLD_LOCAL, as Python's tensorrt module does).
//
// usage: host_driver TRTLIB PLUGIN MODE [ARG]     (TRTLIB is ignored when linked)
//   load-library        IPluginRegistry::loadLibrary; V3 round trips (both ops); deregisterLibrary;
//                       load again
//   static              dlopen(PLUGIN) after TensorRT: both creators are registered at load time
//   refuse CASE         one refusal with TensorRT's own finder: nullptr and a message naming it
//   hostile-logger KIND setLoggerFinder(a finder whose logger cannot be called), then a refusal:
//                       no abort, the message goes to stderr
//   mismatch            PLUGIN is built for another TensorRT: nothing registered, no crash
//   v2 PART             (10.x builds) the V2 creators from getPluginCreators: round trip, blob
//                       refusals (PART: round-trip, truncated, bit-flips, garbage), both ops
//   no-trt              PLUGIN loaded with no TensorRT in the process (never with S6_LINKED)
// Exit 0 on success, 1 on a failed check; an abort is a signal.
#include "common.h"

#include <NvInferVersion.h>
#include <dlfcn.h>

#include <cstdint>
#include <cstring>
#include <functional>
#include <map>

#if defined(TRT_MAJOR_RTX)
#define DRV_RTX 1
#else
#define DRV_RTX 0
#endif
#define DRV_HAS_V2 (!DRV_RTX && NV_TENSORRT_MAJOR <= 10)

using namespace nvinfer1;
using s6test::failures;

namespace {

// The two ops' plugin fields, in contract order (docs/s6scan.md, docs/s6scan_heads.md).
std::vector<std::string> const kFieldNames = {"delta_softplus", "has_D", "has_z", "has_delta_bias",
    "has_initial_state", "has_last_state", "channels_last", "bc_channels_last"};
constexpr int kNbFields = 8;
std::vector<std::string> const kHeadsFieldNames
    = {"dt_softplus", "has_D", "has_z", "has_dt_bias", "has_dt_limit", "has_initial_state", "has_last_state"};
constexpr char const* kHeads = "S6ScanHeads";

// The fields exactly as TensorRT's ONNX parser passes INT node attributes: kINT32, length 1.
struct OnnxFields {
    int32_t values[kNbFields];
    std::vector<PluginField> fields;
    PluginFieldCollection fc{};
    explicit OnnxFields(std::vector<int32_t> const& v, std::vector<std::string> const& names = kFieldNames)
    {
        for (size_t i = 0; i < names.size() && i < kNbFields; ++i)
        {
            values[i] = v[i];
            fields.emplace_back(names[i].c_str(), &values[i], PluginFieldType::kINT32, 1);
        }
        sync();
    }
    void sync()
    {
        fc.nbFields = static_cast<int32_t>(fields.size());
        fc.fields = fields.data();
    }
};

// ---- the TensorRT under test -------------------------------------------------------------------

using GetRegistryFn = IPluginRegistry* (*) ();
using GetVersionFn = int32_t (*)();
using CreateBuilderFn = void* (*) (void*, int32_t);

struct Trt {
    void* handle = nullptr;
    GetRegistryFn getRegistry = nullptr;
    GetVersionFn getVersion = nullptr;
    CreateBuilderFn createBuilder = nullptr;
};

bool openTrt(char const* path, Trt& t)
{
#ifdef S6_LINKED
    (void) path;
    t.getRegistry = &getPluginRegistry;
    t.getVersion = &getInferLibVersion;
    t.handle = dlopen(nullptr, RTLD_NOW);
#else
    t.handle = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (t.handle == nullptr)
    {
        std::printf("FAIL dlopen %s: %s\n", path, dlerror());
        return false;
    }
    t.getRegistry = reinterpret_cast<GetRegistryFn>(dlsym(t.handle, "getPluginRegistry"));
    t.getVersion = reinterpret_cast<GetVersionFn>(dlsym(t.handle, "getInferLibVersion"));
#endif
    t.createBuilder = reinterpret_cast<CreateBuilderFn>(dlsym(t.handle, "createInferBuilder_INTERNAL"));
    if (t.getRegistry == nullptr || t.getVersion == nullptr)
    {
        std::printf("FAIL getPluginRegistry/getInferLibVersion not found\n");
        return false;
    }
    std::printf("TensorRT library version %d (%s)\n", t.getVersion(),
#ifdef S6_LINKED
        "linked"
#else
        "dlopen RTLD_LOCAL"
#endif
    );
    return true;
}

// Where the builder exists (TensorRT-RTX), create one with an application logger first: its
// logger is then what TensorRT's own finder hands the plugin (getLogger()).
s6test::RecordingLogger gAppLogger;
void* gBuilder = nullptr;
void makeBuilder(Trt const& t)
{
    if (t.createBuilder != nullptr)
    {
        gBuilder = t.createBuilder(&gAppLogger, t.getVersion());
        std::printf("builder %s\n", gBuilder ? "created (its logger is TensorRT's)" : "not created");
    }
}

IPluginCreatorV3One* findV3(IPluginRegistry& reg, char const* op = "S6Scan")
{
    IPluginCreatorInterface* ci = reg.getCreator(op, "1", "");
    if (ci == nullptr)
    {
        return nullptr;
    }
    InterfaceInfo info = ci->getInterfaceInfo();
    if (std::strcmp(info.kind, "PLUGIN CREATOR_V3ONE") != 0)
    {
        std::printf("creator interface kind is %s\n", info.kind);
        return nullptr;
    }
    return static_cast<IPluginCreatorV3One*>(ci);
}

// How many creators named `op` the registry holds (of either interface).
int countS6(IPluginRegistry& reg, char const* op = "S6Scan")
{
    int32_t n = 0;
    IPluginCreatorInterface* const* all = reg.getAllCreators(&n);
    int found = 0;
    for (int32_t i = 0; all != nullptr && i < n; ++i)
    {
        InterfaceInfo info = all[i]->getInterfaceInfo();
        if (std::strcmp(info.kind, "PLUGIN CREATOR_V3ONE") == 0
            && std::strcmp(static_cast<IPluginCreatorV3One*>(all[i])->getPluginName(), op) == 0)
        {
            ++found;
        }
#if DRV_HAS_V2
        if (std::strcmp(info.kind, "PLUGIN CREATOR_V1") == 0
            && std::strcmp(static_cast<IPluginCreator*>(all[i])->getPluginName(), op) == 0)
        {
            ++found;
        }
#endif
    }
    return found;
}

std::vector<int32_t> fieldValues(PluginFieldCollection const* fc, std::vector<std::string> const& names = kFieldNames)
{
    std::vector<int32_t> v;
    for (int32_t i = 0; fc != nullptr && i < fc->nbFields; ++i)
    {
        PluginField const& f = fc->fields[i];
        bool const ok = f.type == PluginFieldType::kINT32 && f.length == 1 && f.data != nullptr
            && static_cast<size_t>(i) < names.size() && names[i] == f.name;
        v.push_back(ok ? *static_cast<int32_t const*>(f.data) : -999);
    }
    return v;
}

// The V3 plugin as TensorRT uses it: capabilities, fields to serialise, re-creation at runtime.
void roundTripV3(IPluginCreatorV3One& creator)
{
    S6_CHECK(std::strcmp(creator.getPluginName(), "S6Scan") == 0, "name %s", creator.getPluginName());
    S6_CHECK(std::strcmp(creator.getPluginVersion(), "1") == 0, "version %s", creator.getPluginVersion());
    S6_CHECK(std::strcmp(creator.getPluginNamespace(), "") == 0, "namespace %s", creator.getPluginNamespace());
    PluginFieldCollection const* names = creator.getFieldNames();
    S6_CHECK(names && names->nbFields == kNbFields, "getFieldNames count %d", names ? names->nbFields : -1);
    for (int i = 0; names && i < names->nbFields && i < kNbFields; ++i)
    {
        S6_CHECK(kFieldNames[i] == names->fields[i].name
                && names->fields[i].type == PluginFieldType::kINT32 && names->fields[i].length == 1,
            "field %d is %s", i, names->fields[i].name);
    }

    std::vector<int32_t> const want = {1, 1, 1, 0, 0, 1, 0, 0};
    OnnxFields f(want);
    IPluginV3* p = creator.createPlugin("layer_s6", &f.fc, TensorRTPhase::kBUILD);
    S6_CHECK(p != nullptr, "createPlugin(kBUILD) from ONNX-parser fields");
    if (p == nullptr)
    {
        return;
    }
    auto* core = static_cast<IPluginV3OneCore*>(p->getCapabilityInterface(PluginCapabilityType::kCORE));
    auto* build = static_cast<IPluginV3OneBuild*>(p->getCapabilityInterface(PluginCapabilityType::kBUILD));
    auto* rt = static_cast<IPluginV3OneRuntime*>(p->getCapabilityInterface(PluginCapabilityType::kRUNTIME));
    S6_CHECK(core && build && rt, "three capabilities");
    if (!(core && build && rt))
    {
        return;
    }
    S6_CHECK(std::strcmp(core->getInterfaceInfo().kind, "PLUGIN_V3ONE_CORE") == 0, "core kind");
    S6_CHECK(std::strcmp(build->getInterfaceInfo().kind, "PLUGIN_V3ONE_BUILD") == 0, "build kind");
    S6_CHECK(std::strcmp(rt->getInterfaceInfo().kind, "PLUGIN_V3ONE_RUNTIME") == 0, "runtime kind");
    S6_CHECK(std::strcmp(core->getPluginName(), "S6Scan") == 0 && std::strcmp(core->getPluginVersion(), "1") == 0,
        "core name/version");
    S6_CHECK(build->getNbOutputs() == 2, "outputs %d", build->getNbOutputs());
    DataType in7[7] = {DataType::kHALF, DataType::kHALF, DataType::kFLOAT, DataType::kHALF, DataType::kHALF,
        DataType::kFLOAT, DataType::kHALF};
    DataType outTypes[2] = {DataType::kINT8, DataType::kINT8};
    S6_CHECK(build->getOutputDataTypes(outTypes, 2, in7, 7) == 0 && outTypes[0] == DataType::kHALF
            && outTypes[1] == DataType::kFLOAT,
        "output types");
    std::vector<int32_t> const stored = fieldValues(rt->getFieldsToSerialize());
    S6_CHECK(stored == want, "getFieldsToSerialize gives the creation fields");

    // What an engine does on deserialisation: createPlugin(kRUNTIME) with the stored fields.
    OnnxFields again(stored);
    IPluginV3* q = creator.createPlugin("layer_s6", &again.fc, TensorRTPhase::kRUNTIME);
    S6_CHECK(q != nullptr, "createPlugin(kRUNTIME) from the serialised fields");
    IPluginV3* c = p->clone();
    S6_CHECK(c != nullptr, "clone");
    IPluginV3* attached = rt->attachToContext(nullptr);
    S6_CHECK(attached != nullptr, "attachToContext");
    for (IPluginV3* x : {q, c, attached})
    {
        if (x != nullptr)
        {
            auto* r = static_cast<IPluginV3OneRuntime*>(x->getCapabilityInterface(PluginCapabilityType::kRUNTIME));
            S6_CHECK(r && fieldValues(r->getFieldsToSerialize()) == want, "copy keeps the fields");
        }
    }
    OnnxFields other({0, 1, 1, 0, 0, 1, 0, 0});
    IPluginV3* o = creator.createPlugin("layer_s6b", &other.fc, TensorRTPhase::kBUILD);
    auto* orr = o ? static_cast<IPluginV3OneRuntime*>(o->getCapabilityInterface(PluginCapabilityType::kRUNTIME))
                  : nullptr;
    S6_CHECK(orr && fieldValues(orr->getFieldsToSerialize()) != want, "other attributes, other fields");
    for (IPluginV3* x : {p, q, c, attached, o})
    {
        delete x;
    }
}

// The S6ScanHeads creator as TensorRT and its ONNX parser use it: found by (S6ScanHeads, "1", ""),
// its seven fields in contract order, createPlugin from the parser's kINT32 fields, output
// types and shapes (through an IExprBuilder), the fields stored in an engine and re-created at
// kRUNTIME.
void roundTripHeads(IPluginRegistry& reg)
{
    IPluginCreatorV3One* creator = findV3(reg, kHeads);
    S6_CHECK(creator != nullptr, "the S6ScanHeads v1 V3 creator in the registry");
    if (creator == nullptr)
    {
        return;
    }
    S6_CHECK(std::strcmp(creator->getPluginName(), kHeads) == 0, "name %s", creator->getPluginName());
    S6_CHECK(std::strcmp(creator->getPluginVersion(), "1") == 0, "version %s", creator->getPluginVersion());
    S6_CHECK(std::strcmp(creator->getPluginNamespace(), "") == 0, "namespace");
    PluginFieldCollection const* names = creator->getFieldNames();
    S6_CHECK(names && names->nbFields == 7, "getFieldNames count %d", names ? names->nbFields : -1);
    for (int i = 0; names && i < names->nbFields && i < 7; ++i)
    {
        S6_CHECK(kHeadsFieldNames[i] == names->fields[i].name && names->fields[i].type == PluginFieldType::kINT32
                && names->fields[i].length == 1,
            "heads field %d is %s", i, names->fields[i].name);
    }

    // Mamba2 as transformers exports it: softplus, D, dt_bias, dt_limit; no z (the gated norm
    // stays in the graph); last state. Inputs x, dt, A, B, C, D, dt_bias, dt_limit.
    std::vector<int32_t> const want = {1, 1, 0, 1, 1, 0, 1};
    OnnxFields f(want, kHeadsFieldNames);
    IPluginV3* p = creator->createPlugin("layer_heads", &f.fc, TensorRTPhase::kBUILD);
    S6_CHECK(p != nullptr, "heads createPlugin(kBUILD) from ONNX-parser fields");
    if (p == nullptr)
    {
        return;
    }
    auto* core = static_cast<IPluginV3OneCore*>(p->getCapabilityInterface(PluginCapabilityType::kCORE));
    auto* build = static_cast<IPluginV3OneBuild*>(p->getCapabilityInterface(PluginCapabilityType::kBUILD));
    auto* rt = static_cast<IPluginV3OneRuntime*>(p->getCapabilityInterface(PluginCapabilityType::kRUNTIME));
    S6_CHECK(core && build && rt, "three capabilities");
    if (!(core && build && rt))
    {
        delete p;
        return;
    }
    S6_CHECK(std::strcmp(core->getPluginName(), kHeads) == 0 && std::strcmp(core->getPluginVersion(), "1") == 0,
        "core name/version %s", core->getPluginName());
    S6_CHECK(build->getNbOutputs() == 2, "outputs %d", build->getNbOutputs());
    DataType in8[8] = {DataType::kHALF, DataType::kHALF, DataType::kFLOAT, DataType::kHALF, DataType::kHALF,
        DataType::kFLOAT, DataType::kFLOAT, DataType::kFLOAT};
    DataType outTypes[2] = {DataType::kINT8, DataType::kINT8};
    S6_CHECK(build->getOutputDataTypes(outTypes, 2, in8, 8) == 0 && outTypes[0] == DataType::kHALF
            && outTypes[1] == DataType::kFLOAT,
        "heads output types");
    S6_CHECK(build->getOutputDataTypes(outTypes, 2, in8, 7) != 0, "7 input types refused (8 inputs)");

    // Shapes: batch and L symbolic, H = 4, P = 3, G = 2, N = 5.
    s6test::ExprBuilder eb;
    IDimensionExpr const* b = eb.impl.make("batch", false, -1);
    IDimensionExpr const* len = eb.impl.make("L", false, -1);
    auto c = [&](int64_t v) { return eb.impl.constant(v); };
    auto dims = [](std::vector<IDimensionExpr const*> const& e) {
        DimsExprs d{};
        d.nbDims = static_cast<int32_t>(e.size());
        for (size_t k = 0; k < e.size(); ++k)
        {
            d.d[k] = e[k];
        }
        return d;
    };
    IDimensionExpr const* n = c(5);
    DimsExprs ins[8] = {dims({b, len, c(4), c(3)}), dims({b, len, c(4)}), dims({c(4)}), dims({b, len, c(2), n}),
        dims({b, len, c(2), c(5)}), dims({c(4)}), dims({c(4)}), dims({c(2)})};
    DimsExprs outs[2]{};
    S6_CHECK(build->getOutputShapes(ins, 8, nullptr, 0, outs, 2, eb) == 0, "heads getOutputShapes");
    S6_CHECK(outs[0].nbDims == 4 && outs[0].d[0] == b && outs[0].d[1] == len && outs[0].d[2] == ins[0].d[2]
            && outs[0].d[3] == ins[0].d[3],
        "y has x's dimensions (batch, L, H, P)");
    S6_CHECK(outs[1].nbDims == 4 && outs[1].d[0] == b && outs[1].d[1] == ins[0].d[2] && outs[1].d[2] == ins[0].d[3]
            && outs[1].d[3] == n,
        "last_state is (x.d[0], x.d[2], x.d[3], B.d[3])");
    S6_CHECK(eb.impl.operations == 0, "no dimension arithmetic");
    DimsExprs bad[8];
    std::copy(ins, ins + 8, bad);
    bad[0] = dims({b, c(12), len}); // a Mamba1-shaped (B, D, L) input
    S6_CHECK(build->getOutputShapes(bad, 8, nullptr, 0, outs, 2, eb) != 0, "rank-3 x refused");

    std::vector<int32_t> const stored = fieldValues(rt->getFieldsToSerialize(), kHeadsFieldNames);
    S6_CHECK(stored == want, "getFieldsToSerialize gives the creation fields");
    OnnxFields again(stored, kHeadsFieldNames);
    IPluginV3* q = creator->createPlugin("layer_heads", &again.fc, TensorRTPhase::kRUNTIME);
    S6_CHECK(q != nullptr, "heads createPlugin(kRUNTIME) from the serialised fields");
    IPluginV3* cl = p->clone();
    IPluginV3* attached = rt->attachToContext(nullptr);
    S6_CHECK(cl != nullptr && attached != nullptr, "clone, attachToContext");
    for (IPluginV3* x : {q, cl, attached})
    {
        if (x != nullptr)
        {
            auto* r = static_cast<IPluginV3OneRuntime*>(x->getCapabilityInterface(PluginCapabilityType::kRUNTIME));
            auto* k = static_cast<IPluginV3OneCore*>(x->getCapabilityInterface(PluginCapabilityType::kCORE));
            S6_CHECK(r && k && std::strcmp(k->getPluginName(), kHeads) == 0
                    && fieldValues(r->getFieldsToSerialize(), kHeadsFieldNames) == want,
                "copy keeps the op and the fields");
        }
    }
    // S6Scan's fields are not S6ScanHeads' (and the other way round).
    OnnxFields scanFields({1, 1, 1, 0, 0, 1, 0, 0});
    IPluginV3* wrong = creator->createPlugin("layer_wrong", &scanFields.fc, TensorRTPhase::kBUILD);
    S6_CHECK(wrong == nullptr, "S6Scan's fields refused by the S6ScanHeads creator");
    if (IPluginCreatorV3One* scan = findV3(reg))
    {
        IPluginV3* w = scan->createPlugin("layer_wrong", &f.fc, TensorRTPhase::kBUILD);
        S6_CHECK(w == nullptr, "S6ScanHeads' fields refused by the S6Scan creator");
        delete w;
    }
    for (IPluginV3* x : {p, q, cl, attached, wrong})
    {
        delete x;
    }
}

// ---- refusals, one per process -----------------------------------------------------------------

struct Refusal {
    std::function<bool(IPluginCreatorV3One&)> run; // true: refused (nullptr)
    std::vector<std::string> message;              // what the log line must name
    char const* op = "S6Scan";                     // whose creator refuses
};

std::map<std::string, Refusal> refusals()
{
    std::map<std::string, Refusal> r;
    r["bad-value"] = {[](IPluginCreatorV3One& c) {
                          OnnxFields f({1, 1, 2, 0, 0, 1, 0, 0});
                          return c.createPlugin("layer_bad", &f.fc, TensorRTPhase::kBUILD) == nullptr;
                      },
        {"layer_bad", "has_z", "0 or 1"}};
    r["missing-field"] = {[](IPluginCreatorV3One& c) {
                              OnnxFields f({0, 0, 0, 0, 0, 0, 0, 0});
                              f.fields.pop_back();
                              f.sync();
                              return c.createPlugin("layer_missing", &f.fc, TensorRTPhase::kBUILD) == nullptr;
                          },
        {"layer_missing", "bc_channels_last", "missing"}};
    r["mistyped-field"] = {[](IPluginCreatorV3One& c) {
                               OnnxFields f({0, 0, 0, 0, 0, 0, 0, 0});
                               static float one = 1.0f;
                               f.fields[1] = PluginField("has_D", &one, PluginFieldType::kFLOAT32, 1);
                               return c.createPlugin("layer_float", &f.fc, TensorRTPhase::kBUILD) == nullptr;
                           },
        {"layer_float", "has_D", "kFLOAT32"}};
    r["unknown-field"] = {[](IPluginCreatorV3One& c) {
                              OnnxFields f({0, 0, 0, 0, 0, 0, 0, 0});
                              static int32_t v = 1;
                              f.fields.emplace_back("has_Z", &v, PluginFieldType::kINT32, 1);
                              f.sync();
                              return c.createPlugin("layer_unknown", &f.fc, TensorRTPhase::kBUILD) == nullptr;
                          },
        {"layer_unknown", "has_Z", "unknown"}};
    r["null-data"] = {[](IPluginCreatorV3One& c) {
                          OnnxFields f({0, 0, 0, 0, 0, 0, 0, 0});
                          f.fields[3] = PluginField("has_delta_bias", nullptr, PluginFieldType::kINT32, 1);
                          return c.createPlugin("layer_null", &f.fc, TensorRTPhase::kRUNTIME) == nullptr;
                      },
        {"layer_null", "has_delta_bias"}};
    r["bad-length"] = {[](IPluginCreatorV3One& c) {
                           OnnxFields f({0, 0, 0, 0, 0, 0, 0, 0});
                           static int32_t two[2] = {1, 1};
                           f.fields[0] = PluginField("delta_softplus", two, PluginFieldType::kINT32, 2);
                           return c.createPlugin("layer_len", &f.fc, TensorRTPhase::kRUNTIME) == nullptr;
                       },
        {"layer_len", "delta_softplus"}};
    r["bad-collection"] = {[](IPluginCreatorV3One& c) {
                               PluginFieldCollection fc{};
                               fc.nbFields = 3;
                               fc.fields = nullptr;
                               return c.createPlugin("layer_fc", &fc, TensorRTPhase::kBUILD) == nullptr;
                           },
        {"layer_fc", "PluginFieldCollection"}};
    // S6ScanHeads: the parser's kINT32 fields with one missing, one out of range, one unknown.
    r["heads-missing-field"] = {[](IPluginCreatorV3One& c) {
                                    OnnxFields f({1, 1, 0, 1, 1, 0, 1}, kHeadsFieldNames);
                                    f.fields.erase(f.fields.begin() + 4);
                                    f.sync();
                                    return c.createPlugin("layer_heads_missing", &f.fc, TensorRTPhase::kBUILD)
                                        == nullptr;
                                },
        {"S6ScanHeads plugin 'layer_heads_missing'", "has_dt_limit", "missing"}, kHeads};
    r["heads-bad-value"] = {[](IPluginCreatorV3One& c) {
                                OnnxFields f({1, 1, 0, 1, 2, 0, 1}, kHeadsFieldNames);
                                return c.createPlugin("layer_heads_bad", &f.fc, TensorRTPhase::kRUNTIME) == nullptr;
                            },
        {"S6ScanHeads plugin 'layer_heads_bad'", "has_dt_limit", "0 or 1"}, kHeads};
    r["heads-unknown-field"] = {[](IPluginCreatorV3One& c) {
                                    OnnxFields f({1, 1, 0, 1, 1, 0, 1}, kHeadsFieldNames);
                                    static int32_t v = 0;
                                    f.fields.emplace_back("channels_last", &v, PluginFieldType::kINT32, 1);
                                    f.sync();
                                    return c.createPlugin("layer_heads_unknown", &f.fc, TensorRTPhase::kBUILD)
                                        == nullptr;
                                },
        {"S6ScanHeads plugin 'layer_heads_unknown'", "channels_last", "unknown"}, kHeads};
    return r;
}

// Loggers TensorRT might hand over that must not be called: each mimics a way it goes wrong.
struct PureVtable {
    void* slots[8];
};
PureVtable gPureVtable;
struct FakeObject {
    void* vptr;
};
extern "C" void __cxa_pure_virtual();

class FixedFinder : public ILoggerFinder {
public:
    explicit FixedFinder(ILogger* l)
        : mLogger(l)
    {
    }
    ILogger* findLogger() override
    {
        return mLogger;
    }

private:
    ILogger* mLogger;
};

bool hostileFinder(std::string const& kind, void** finder)
{
    for (void*& s : gPureVtable.slots)
    {
        s = reinterpret_cast<void*>(&__cxa_pure_virtual);
    }
    static FakeObject pureObject{&gPureVtable};
    static FakeObject heapVtable{nullptr};
    if (kind == "pure-logger") // a logger destroyed by its owner: its vtable is the abstract base's
    {
        *finder = new FixedFinder(reinterpret_cast<ILogger*>(&pureObject));
    }
    else if (kind == "unmapped-logger") // a logger pointer into nowhere
    {
        *finder = new FixedFinder(reinterpret_cast<ILogger*>(static_cast<uintptr_t>(0x10000)));
    }
    else if (kind == "vtable-not-in-a-module") // a vptr pointing at heap data
    {
        heapVtable.vptr = new PureVtable{};
        *finder = new FixedFinder(reinterpret_cast<ILogger*>(&heapVtable));
    }
    else if (kind == "pure-finder") // the finder itself destroyed
    {
        *finder = &pureObject;
    }
    else
    {
        return false;
    }
    return true;
}

using SetFinderFn = void (*)(void*);

int finish(char const* mode)
{
    std::printf("%s: %d failure(s)\n", mode, failures());
    std::fflush(stdout);
    return failures() == 0 ? 0 : 1;
}

} // namespace

int main(int argc, char** argv)
{
    if (argc < 4)
    {
        std::fprintf(stderr, "usage: %s TRTLIB PLUGIN MODE [ARG]\n", argv[0]);
        return 2;
    }
    char const* const plugin = argv[2];
    std::string const mode = argv[3];
    std::string const arg = argc > 4 ? argv[4] : "";

    if (mode == "no-trt")
    {
#ifdef S6_LINKED
        std::printf("FAIL no-trt needs the dlopen build\n");
        return 1;
#else
        void* lib = dlopen(plugin, RTLD_NOW | RTLD_LOCAL);
        S6_CHECK(lib != nullptr, "dlopen without TensorRT: %s", lib ? "" : dlerror());
        using GetCreators = void* const* (*) (int32_t*);
        auto getCreators = lib ? reinterpret_cast<GetCreators>(dlsym(lib, "getCreators")) : nullptr;
        using Info = char const* (*) ();
        auto info = lib ? reinterpret_cast<Info>(dlsym(lib, "s6pluginBuildInfo")) : nullptr;
        int32_t n = -1;
        S6_CHECK(getCreators && getCreators(&n) && n == 2, "getCreators works without TensorRT (n = %d)", n);
        S6_CHECK(info && std::strncmp(info(), "s6plugin ", 9) == 0, "s6pluginBuildInfo");
        if (info)
        {
            std::printf("build info: %s\n", info());
        }
        return finish("no-trt");
#endif
    }

    Trt trt;
    if (!openTrt(argv[1], trt))
    {
        return 1;
    }
    IPluginRegistry* reg = trt.getRegistry();
    S6_CHECK(reg != nullptr, "registry");
    if (reg == nullptr)
    {
        return 1;
    }
    makeBuilder(trt);
    S6_CHECK(countS6(*reg) == 0 && countS6(*reg, kHeads) == 0, "nothing registered before the library is loaded");

    if (mode == "mismatch")
    {
        void* h = reg->loadLibrary(plugin);
        S6_CHECK(h == nullptr || (countS6(*reg) == 0 && countS6(*reg, kHeads) == 0),
            "loadLibrary of another ABI's library registers nothing");
        void* lib = dlopen(plugin, RTLD_NOW | RTLD_LOCAL);
        S6_CHECK(lib != nullptr, "dlopen of another ABI's library: %s", lib ? "" : dlerror());
        S6_CHECK(countS6(*reg) == 0 && countS6(*reg, kHeads) == 0, "its load-time registration registered nothing");
        using GetCreators = void* const* (*) (int32_t*);
        auto getCreators = lib ? reinterpret_cast<GetCreators>(dlsym(lib, "getCreators")) : nullptr;
        int32_t n = -1;
        S6_CHECK(getCreators && getCreators(&n) == nullptr && n == 0, "getCreators hands nothing to this TensorRT");
        return finish("mismatch");
    }

    if (mode == "static")
    {
        void* lib = dlopen(plugin, RTLD_NOW | RTLD_LOCAL);
        S6_CHECK(lib != nullptr, "dlopen %s: %s", plugin, lib ? "" : dlerror());
        S6_CHECK(countS6(*reg) == 1 && countS6(*reg, kHeads) == 1, "both registered once, at load time (%d, %d)",
            countS6(*reg), countS6(*reg, kHeads));
        IPluginCreatorV3One* c = findV3(*reg);
        S6_CHECK(c != nullptr, "the V3 creator");
        if (c)
        {
            roundTripV3(*c);
        }
        roundTripHeads(*reg);
        return finish("static");
    }

    void* handle = reg->loadLibrary(plugin);
    S6_CHECK(handle != nullptr, "loadLibrary(%s)", plugin);
    if (handle == nullptr)
    {
        return finish(mode.c_str());
    }
    S6_CHECK(countS6(*reg) == 1 && countS6(*reg, kHeads) == 1, "both registered once (%d, %d)", countS6(*reg),
        countS6(*reg, kHeads));
    IPluginCreatorV3One* creator = findV3(*reg);
    S6_CHECK(creator != nullptr, "S6Scan v1 V3 creator in the registry");
    if (creator == nullptr)
    {
        return finish(mode.c_str());
    }

    if (mode == "load-library")
    {
        roundTripV3(*creator);
        roundTripHeads(*reg);
        reg->deregisterLibrary(handle);
        S6_CHECK(reg->getCreator("S6Scan", "1", "") == nullptr && reg->getCreator(kHeads, "1", "") == nullptr,
            "both gone after deregisterLibrary");
        void* again = reg->loadLibrary(plugin);
        S6_CHECK(again != nullptr && findV3(*reg) != nullptr && findV3(*reg, kHeads) != nullptr,
            "loads again after deregisterLibrary");
        if (again)
        {
            reg->deregisterLibrary(again);
        }
        return finish("load-library");
    }

    if (mode == "refuse" || mode == "hostile-logger")
    {
        std::string const caseName = mode == "refuse" ? arg : "bad-value";
        if (mode == "hostile-logger")
        {
            void* lib = dlopen(plugin, RTLD_NOW | RTLD_NOLOAD);
            auto setFinder = lib ? reinterpret_cast<SetFinderFn>(dlsym(lib, "setLoggerFinder")) : nullptr;
            void* finder = nullptr;
            S6_CHECK(setFinder != nullptr && hostileFinder(arg, &finder), "hostile finder %s", arg.c_str());
            if (setFinder && finder)
            {
                setFinder(finder);
            }
        }
        auto cases = refusals();
        auto it = cases.find(caseName);
        S6_CHECK(it != cases.end(), "refusal case %s exists", caseName.c_str());
        if (it == cases.end())
        {
            return finish(mode.c_str());
        }
        IPluginCreatorV3One* refuser = findV3(*reg, it->second.op);
        S6_CHECK(refuser != nullptr, "the %s creator", it->second.op);
        if (refuser == nullptr)
        {
            return finish(mode.c_str());
        }
        size_t const mark = gAppLogger.count();
        S6_CHECK(it->second.run(*refuser), "%s refused (nullptr)", caseName.c_str());
        // With TensorRT's own finder the line reaches the application's logger where TensorRT has
        // one (a builder was created); else the library's stderr, which the Rust test checks.
        if (gBuilder != nullptr && mode == "refuse")
        {
            S6_CHECK(gAppLogger.saw(mark, it->second.message), "the application's logger got the refusal");
        }
        for (std::string const& m : it->second.message)
        {
            std::printf("expect: %s\n", m.c_str());
        }
        return finish(mode.c_str());
    }

#if DRV_HAS_V2
    if (mode == "v2")
    {
        void* lib = dlopen(plugin, RTLD_NOW | RTLD_NOLOAD);
        using GetPluginCreators = IPluginCreator* const* (*) (int32_t*);
        auto get = lib ? reinterpret_cast<GetPluginCreators>(dlsym(lib, "getPluginCreators")) : nullptr;
        int32_t n = 0;
        IPluginCreator* const* list = get ? get(&n) : nullptr;
        S6_CHECK(list && n == 2, "getPluginCreators gives both V2 creators (%d)", n);
        std::string const part = arg;
        std::vector<uint8_t> scanBlob;
        for (int32_t k = 0; list && k < n; ++k)
        {
            IPluginCreator& c = *list[k];
            bool const heads = std::strcmp(c.getPluginName(), kHeads) == 0;
            S6_CHECK(heads == (k == 1) && std::strcmp(c.getPluginVersion(), "1") == 0, "V2 creator %d is %s", k,
                c.getPluginName());
            PluginFieldCollection const* names = c.getFieldNames();
            S6_CHECK(names && names->nbFields == (heads ? 7 : 8), "V2 getFieldNames of %s", c.getPluginName());
            OnnxFields f(heads ? std::vector<int32_t>{1, 1, 0, 1, 1, 0, 1} : std::vector<int32_t>{1, 1, 1, 0, 0, 1, 0, 0},
                heads ? kHeadsFieldNames : kFieldNames);
            IPluginV2* p = c.createPlugin("layer_v2", &f.fc);
            S6_CHECK(p != nullptr, "V2 createPlugin %s", c.getPluginName());
            if (!p)
            {
                continue;
            }
            S6_CHECK(std::strcmp(p->getPluginType(), c.getPluginName()) == 0 && p->getNbOutputs() == 2,
                "V2 plugin type %s", p->getPluginType());
            std::vector<uint8_t> blob(p->getSerializationSize());
            p->serialize(blob.data());
            IPluginV2* q = c.deserializePlugin("layer_v2", blob.data(), blob.size());
            S6_CHECK(q != nullptr && std::strcmp(q->getPluginType(), c.getPluginName()) == 0,
                "V2 deserializePlugin %s", c.getPluginName());
            if (!heads)
            {
                scanBlob = blob;
            }
            else if (!scanBlob.empty())
            {
                S6_CHECK(c.deserializePlugin("layer_foreign", scanBlob.data(), scanBlob.size()) == nullptr,
                    "an S6Scan blob refused by the S6ScanHeads creator");
                S6_CHECK(list[0]->deserializePlugin("layer_foreign", blob.data(), blob.size()) == nullptr,
                    "an S6ScanHeads blob refused by the S6Scan creator");
            }
            if (part == "truncated")
            {
                int refused = 0;
                for (size_t len = 0; len < blob.size(); ++len)
                {
                    refused += c.deserializePlugin("layer_trunc", blob.data(), len) == nullptr;
                }
                S6_CHECK(refused == static_cast<int>(blob.size()), "every truncation refused (%d of %zu)", refused,
                    blob.size());
            }
            else if (part == "bit-flips")
            {
                int refused = 0;
                for (size_t bit = 0; bit < blob.size() * 8; ++bit)
                {
                    std::vector<uint8_t> bb = blob;
                    bb[bit / 8] ^= static_cast<uint8_t>(1u << (bit % 8));
                    refused += c.deserializePlugin("layer_flip", bb.data(), bb.size()) == nullptr;
                }
                S6_CHECK(refused == static_cast<int>(blob.size() * 8), "every bit flip refused (%d of %zu)", refused,
                    blob.size() * 8);
            }
            else if (part == "garbage")
            {
                uint8_t garbage[64];
                std::memset(garbage, 0xA5, sizeof garbage);
                S6_CHECK(c.deserializePlugin("layer_garbage", garbage, sizeof garbage) == nullptr, "garbage refused");
                S6_CHECK(c.deserializePlugin("layer_null", nullptr, 12) == nullptr, "null data refused");
            }
            for (IPluginV2* x : {p, q})
            {
                if (x)
                {
                    x->destroy();
                }
            }
        }
        return finish("v2");
    }
#endif

    std::printf("FAIL unknown mode %s\n", mode.c_str());
    return 1;
}
