// CI test driver (no GPU): TensorRT's real plugin registry (the lean runtime) loads
// libs6plugin.so and uses the S6Scan creator the way TensorRT and its ONNX parser do.
//
// usage: registry_driver LIBNVINFER_LEAN LIBS6PLUGIN MODE
//   MODE dynamic: TensorRT loaded privately (RTLD_LOCAL); IPluginRegistry::loadLibrary, the
//                 whole creator/plugin round trip, the refusals, deregisterLibrary.
//   MODE loaded-by-trt: TensorRT loaded globally (as when an app links it); loadLibrary must still
//                 succeed (the library's load-time registration stands aside).
//   MODE static:  TensorRT loaded globally, then the app dlopens libs6plugin.so itself (what
//                 `trtexec --staticPlugins` does): the creator must be registered at load time.
//   MODE static-private: TensorRT loaded privately (RTLD_LOCAL, as Python's tensorrt module
//                 does), then libs6plugin.so dlopened (polygraphy --plugins, ctypes.CDLL): the
//                 creator must still be registered at load time.
//   MODE no-trt:  libs6plugin.so loaded with no TensorRT in the process: loads, does nothing.
#include "common.h"

#include <dlfcn.h>

#include <cstdint>
#include <cstring>

using namespace nvinfer1;
using s6test::failures;

namespace {

char const* const kFieldNames[] = {"delta_softplus", "has_D", "has_z", "has_delta_bias", "has_initial_state",
    "has_last_state", "channels_last", "bc_channels_last"};
constexpr int kNbFields = 8;

// The fields exactly as TensorRT's ONNX parser passes INT node attributes: kINT32, length 1.
struct OnnxFields {
    int32_t values[kNbFields];
    std::vector<PluginField> fields;
    PluginFieldCollection fc{};
    explicit OnnxFields(std::vector<int32_t> const& v)
    {
        for (int i = 0; i < kNbFields; ++i)
        {
            values[i] = v[i];
            fields.emplace_back(kFieldNames[i], &values[i], PluginFieldType::kINT32, 1);
        }
        sync();
    }
    void sync()
    {
        fc.nbFields = static_cast<int32_t>(fields.size());
        fc.fields = fields.data();
    }
};

std::vector<uint8_t> blobOf(IPluginV2 const& p)
{
    std::vector<uint8_t> b(p.getSerializationSize());
    p.serialize(b.data());
    return b;
}

IPluginCreator* findCreator(IPluginRegistry& reg)
{
    IPluginCreatorInterface* ci = reg.getCreator("S6Scan", "1", "");
    if (ci == nullptr)
    {
        return nullptr;
    }
    InterfaceInfo info = ci->getInterfaceInfo();
    if (std::strcmp(info.kind, "PLUGIN CREATOR_V1") != 0)
    {
        std::printf("creator interface kind is %s\n", info.kind);
        return nullptr;
    }
    return static_cast<IPluginCreator*>(ci);
}

void roundTrip(IPluginRegistry& reg, s6test::RecordingLogger& logger)
{
    IPluginCreator* creator = findCreator(reg);
    S6_CHECK(creator != nullptr, "S6Scan v1 not in the registry");
    if (!creator)
    {
        return;
    }
    S6_CHECK(std::strcmp(creator->getPluginName(), "S6Scan") == 0, "name %s", creator->getPluginName());
    S6_CHECK(std::strcmp(creator->getPluginVersion(), "1") == 0, "version %s", creator->getPluginVersion());
    S6_CHECK(std::strcmp(creator->getPluginNamespace(), "") == 0, "namespace %s", creator->getPluginNamespace());

    PluginFieldCollection const* names = creator->getFieldNames();
    S6_CHECK(names && names->nbFields == kNbFields, "getFieldNames count %d", names ? names->nbFields : -1);
    for (int i = 0; names && i < names->nbFields && i < kNbFields; ++i)
    {
        S6_CHECK(std::strcmp(names->fields[i].name, kFieldNames[i]) == 0 && names->fields[i].type == PluginFieldType::kINT32
                && names->fields[i].length == 1,
            "field %d is %s", i, names->fields[i].name);
    }

    // delta_softplus, has_D, has_z, has_delta_bias, has_initial_state, has_last_state, channels_last, bc_cl
    OnnxFields f({1, 1, 1, 0, 0, 1, 0, 0});
    IPluginV2* p = creator->createPlugin("layer_s6", &f.fc);
    S6_CHECK(p != nullptr, "createPlugin from ONNX-parser fields");
    if (!p)
    {
        return;
    }
    auto* dyn = static_cast<IPluginV2DynamicExt*>(p);
    S6_CHECK(std::strcmp(p->getPluginType(), "S6Scan") == 0, "type");
    S6_CHECK(std::strcmp(p->getPluginVersion(), "1") == 0, "version");
    S6_CHECK(p->getNbOutputs() == 2, "outputs %d", p->getNbOutputs());
    DataType in7[7] = {DataType::kHALF, DataType::kHALF, DataType::kFLOAT, DataType::kHALF, DataType::kHALF,
        DataType::kFLOAT, DataType::kHALF};
    S6_CHECK(dyn->getOutputDataType(0, in7, 7) == DataType::kHALF, "y dtype");
    S6_CHECK(dyn->getOutputDataType(1, in7, 7) == DataType::kFLOAT, "last_state dtype");
    S6_CHECK(dyn->initialize() == 0, "initialize");
    p->setPluginNamespace("");

    std::vector<uint8_t> blob = blobOf(*p);
    S6_CHECK(!blob.empty(), "blob size %zu", blob.size());
    IPluginV2* q = creator->deserializePlugin("layer_s6", blob.data(), blob.size());
    S6_CHECK(q != nullptr, "deserializePlugin");
    IPluginV2DynamicExt* c = dyn->clone();
    S6_CHECK(c != nullptr, "clone");
    if (q && c)
    {
        S6_CHECK(blobOf(*q) == blob, "deserialised plugin serialises identically");
        S6_CHECK(blobOf(*c) == blob, "clone serialises identically");
        S6_CHECK(q->getNbOutputs() == 2 && c->getNbOutputs() == 2, "outputs after round trip");
    }
    OnnxFields g({0, 1, 1, 0, 0, 1, 0, 0});
    IPluginV2* other = creator->createPlugin("layer_s6b", &g.fc);
    S6_CHECK(other && blobOf(*other) != blob, "different attributes give a different blob");

    // ---- refusals: nullptr and a log line naming what was wrong ----
    size_t mark = logger.count();
    OnnxFields bad({1, 1, 2, 0, 0, 1, 0, 0});
    S6_CHECK(creator->createPlugin("layer_bad", &bad.fc) == nullptr, "has_z = 2 refused");
    S6_CHECK(logger.saw(mark, {"layer_bad", "has_z", "0 or 1"}), "log names layer and field");

    mark = logger.count();
    OnnxFields missing({0, 0, 0, 0, 0, 0, 0, 0});
    missing.fields.pop_back();
    missing.sync();
    S6_CHECK(creator->createPlugin("layer_missing", &missing.fc) == nullptr, "missing field refused");
    S6_CHECK(logger.saw(mark, {"layer_missing", "bc_channels_last", "missing"}), "log names the missing field");

    mark = logger.count();
    OnnxFields mistyped({0, 0, 0, 0, 0, 0, 0, 0});
    float one = 1.0f;
    mistyped.fields[1] = PluginField("has_D", &one, PluginFieldType::kFLOAT32, 1);
    S6_CHECK(creator->createPlugin("layer_float", &mistyped.fc) == nullptr, "kFLOAT32 field refused");
    S6_CHECK(logger.saw(mark, {"layer_float", "has_D", "kFLOAT32"}), "log names the mistyped field");

    mark = logger.count();
    OnnxFields unknown({0, 0, 0, 0, 0, 0, 0, 0});
    int32_t v = 1;
    unknown.fields.emplace_back("has_Z", &v, PluginFieldType::kINT32, 1);
    unknown.sync();
    S6_CHECK(creator->createPlugin("layer_unknown", &unknown.fc) == nullptr, "unknown field refused");
    S6_CHECK(logger.saw(mark, {"layer_unknown", "has_Z", "unknown"}), "log names the unknown field");

    OnnxFields wide({0, 0, 0, 0, 0, 0, 0, 0});
    int64_t one64 = 1;
    int8_t one8 = 1;
    wide.fields[2] = PluginField("has_z", &one64, PluginFieldType::kINT64, 1);
    wide.fields[1] = PluginField("has_D", &one8, PluginFieldType::kINT8, 1);
    IPluginV2* w = creator->createPlugin("layer_wide", &wide.fc);
    S6_CHECK(w != nullptr, "kINT64 / kINT8 fields accepted");

    mark = logger.count();
    std::vector<uint8_t> corrupt = blob;
    corrupt[corrupt.size() / 2] ^= 0x10;
    S6_CHECK(creator->deserializePlugin("layer_corrupt", corrupt.data(), corrupt.size()) == nullptr,
        "bit-flipped blob refused");
    S6_CHECK(logger.saw(mark, {"layer_corrupt", "blob"}), "log says the blob is bad");
    int refusedTruncations = 0;
    for (size_t n = 0; n < blob.size(); ++n)
    {
        refusedTruncations += creator->deserializePlugin("layer_trunc", blob.data(), n) == nullptr;
    }
    S6_CHECK(refusedTruncations == static_cast<int>(blob.size()), "every truncation refused (%d of %zu)",
        refusedTruncations, blob.size());
    uint8_t garbage[64];
    std::memset(garbage, 0xA5, sizeof garbage);
    S6_CHECK(creator->deserializePlugin("layer_garbage", garbage, sizeof garbage) == nullptr, "garbage refused");

    for (IPluginV2* x : {p, q, static_cast<IPluginV2*>(c), other, w})
    {
        if (x)
        {
            x->terminate();
            x->destroy();
        }
    }
}

} // namespace

int main(int argc, char** argv)
{
    if (argc != 4)
    {
        std::fprintf(stderr, "usage: %s LIBNVINFER_LEAN LIBS6PLUGIN dynamic|loaded-by-trt|static|static-private|no-trt\n",
            argv[0]);
        return 2;
    }
    std::string const mode = argv[3];
    if (mode == "no-trt")
    {
        void* lib = dlopen(argv[2], RTLD_NOW | RTLD_LOCAL);
        S6_CHECK(lib != nullptr, "dlopen without TensorRT: %s", lib ? "" : dlerror());
        using GetCreators = IPluginCreatorInterface* const* (*) (int32_t*);
        auto getCreators = lib ? reinterpret_cast<GetCreators>(dlsym(lib, "getCreators")) : nullptr;
        int32_t n = 0;
        S6_CHECK(getCreators && getCreators(&n) && n == 1, "getCreators works without TensorRT");
        std::printf("%s: %d failure(s)\n", mode.c_str(), failures());
        return failures() == 0 ? 0 : 1;
    }
    bool const privateTrt = mode == "dynamic" || mode == "static-private";
    int const trtFlags = RTLD_NOW | (privateTrt ? RTLD_LOCAL : RTLD_GLOBAL);
    void* trt = dlopen(argv[1], trtFlags);
    if (!trt)
    {
        std::printf("FAIL dlopen %s: %s\n", argv[1], dlerror());
        return 1;
    }
    using GetRegistry = IPluginRegistry* (*) ();
    using GetVersion = int32_t (*)();
    auto getRegistry = reinterpret_cast<GetRegistry>(dlsym(trt, "getPluginRegistry"));
    auto getVersion = reinterpret_cast<GetVersion>(dlsym(trt, "getInferLibVersion"));
    if (!getRegistry)
    {
        std::printf("FAIL getPluginRegistry not found\n");
        return 1;
    }
    std::printf("TensorRT library version %d\n", getVersion ? getVersion() : -1);
    IPluginRegistry* reg = getRegistry();
    S6_CHECK(reg != nullptr, "registry");
    if (!reg)
    {
        return 1;
    }
    s6test::RecordingLogger logger;
    s6test::Finder finder(&logger);
    using SetFinder = void (*)(ILoggerFinder*);

    if (mode == "static" || mode == "static-private")
    {
        S6_CHECK(findCreator(*reg) == nullptr, "not registered before the library is loaded");
        void* lib = dlopen(argv[2], RTLD_NOW | RTLD_LOCAL);
        S6_CHECK(lib != nullptr, "dlopen %s: %s", argv[2], dlerror());
        if (!lib)
        {
            return 1;
        }
        auto setFinder = reinterpret_cast<SetFinder>(dlsym(lib, "setLoggerFinder"));
        if (setFinder)
        {
            setFinder(&finder);
        }
        S6_CHECK(findCreator(*reg) != nullptr, "registered at load time");
        roundTrip(*reg, logger);
    }
    else
    {
        void* handle = reg->loadLibrary(argv[2]);
        S6_CHECK(handle != nullptr, "loadLibrary(%s)", argv[2]);
        if (!handle)
        {
            return 1;
        }
        // TensorRT gave the library its own logger finder; route the library's logging to ours
        // so that the refusals' log lines can be checked.
        void* lib = dlopen(argv[2], RTLD_NOW | RTLD_NOLOAD);
        auto setFinder = lib ? reinterpret_cast<SetFinder>(dlsym(lib, "setLoggerFinder")) : nullptr;
        S6_CHECK(setFinder != nullptr, "setLoggerFinder exported");
        if (setFinder)
        {
            setFinder(&finder);
        }
        if (lib)
        {
            dlclose(lib);
        }
        roundTrip(*reg, logger);
        reg->deregisterLibrary(handle);
        S6_CHECK(reg->getCreator("S6Scan", "1", "") == nullptr, "gone after deregisterLibrary");
        // Loading again works (nothing stayed registered).
        void* again = reg->loadLibrary(argv[2]);
        S6_CHECK(again != nullptr && findCreator(*reg) != nullptr, "loads again after deregisterLibrary");
        if (again)
        {
            reg->deregisterLibrary(again);
        }
    }
    std::printf("%s: %d failure(s)\n", mode.c_str(), failures());
    return failures() == 0 ? 0 : 1;
}
