// The TensorRT calls of s6-engine behind a C interface (trt_glue.h).
//
// TensorRT's API is C++ virtual classes whose layout changes between majors and products, so this
// file is compiled once per backend against that backend's headers (tools/build.rs: TensorRT and,
// with S6_GLUE_BACKEND_RTX, TensorRT-RTX) and the Rust side refuses a library whose major
// differs. No TensorRT symbol is linked: the factory functions arrive as pointers resolved at run
// time. Both compilations live in one binary, so tools/build.rs also renames the `nvinfer1` and
// `nvonnxparser` namespaces per backend: the headers' inline functions would otherwise be merged
// by the linker across backends whose vtables differ.

#include "trt_glue.h"

#include <NvInfer.h>
#if __has_include(<NvOnnxParser.h>)
#include <NvOnnxParser.h>
#define S6_HAVE_ONNX_PARSER 1
#else
#define S6_HAVE_ONNX_PARSER 0
#endif

#if defined(TRT_MAJOR_RTX)
#define S6_RTX 1
#else
#define S6_RTX 0
#endif
#if defined(S6_GLUE_BACKEND_RTX) != S6_RTX
#error "S6_GLUE_BACKEND_RTX must be defined exactly when compiling against TensorRT-RTX headers"
#endif
#if defined(S6_GLUE_REQUIRE_PARSER) && !S6_HAVE_ONNX_PARSER
#error "NvOnnxParser.h not found in the include path"
#endif

#include <cstdio>
#include <cstring>
#include <memory>
#include <string>
#include <type_traits>

namespace {

using namespace nvinfer1;

// TensorRT-RTX 1.x numbers its versions from 1 but has TensorRT 10's API (IPluginV3,
// IProgressMonitor, getCreator) and, like 11, builds strongly typed networks only.
#define S6_TRT_AT_LEAST(maj, min) \
    (S6_RTX || NV_TENSORRT_MAJOR > (maj) || (NV_TENSORRT_MAJOR == (maj) && NV_TENSORRT_MINOR >= (min)))
#define S6_API10 S6_TRT_AT_LEAST(10, 0)
#define S6_STRONGLY_TYPED_ONLY (S6_RTX || NV_TENSORRT_MAJOR >= 11)

using CreateFn = void* (*) (void*, int32_t);
using CreateParserFn = void* (*) (void*, void*, int);
using RegistryFn = IPluginRegistry* (*) ();

void set_err(char* err, size_t len, std::string const& msg) noexcept
{
    if (err != nullptr && len > 0)
    {
        std::snprintf(err, len, "%s", msg.c_str());
    }
}

// Forwards TensorRT's log to Rust and keeps the last error for the failure message.
class Logger : public ILogger
{
public:
    Logger(s6_log_fn fn, void* user) noexcept
        : mFn(fn)
        , mUser(user)
    {
    }
    void log(Severity severity, AsciiChar const* msg) noexcept override
    {
        if (msg == nullptr)
        {
            return;
        }
        if (severity <= Severity::kERROR)
        {
            ++mErrors;
            try
            {
                // The first error usually names the cause, the last what gave up.
                if (mFirstError.empty())
                {
                    mFirstError = msg;
                }
                mLastError = msg;
            }
            catch (...)
            {
            }
        }
        if (mFn != nullptr)
        {
            mFn(mUser, static_cast<int32_t>(severity), msg);
        }
    }
    std::string errors() const
    {
        return mFirstError == mLastError ? mLastError : mFirstError + " | " + mLastError;
    }
    int32_t errorCount() const noexcept
    {
        return mErrors;
    }

private:
    s6_log_fn mFn;
    void* mUser;
    std::string mFirstError;
    std::string mLastError;
    int32_t mErrors{0};
};

// TensorRT's factories can hand back a non-null, unusable pointer when they fail (seen: the lean
// runtime 10.16 returns 0x228 when CUDA cannot initialise), so a factory result counts only if
// it is a plausible address and no error was logged while it was made.
bool created(void const* p, Logger const& logger, int32_t errorsBefore) noexcept
{
    return reinterpret_cast<uintptr_t>(p) >= 65536 && logger.errorCount() == errorsBefore;
}

std::string with_log(std::string what, Logger const& logger)
{
    if (logger.errorCount() > 0)
    {
        what += ": " + logger.errors();
    }
    return what;
}

#if S6_API10
// Builder progress (IProgressMonitor exists from TensorRT 10 on); never cancels.
class Progress : public IProgressMonitor
{
public:
    Progress(s6_progress_fn fn, void* user) noexcept
        : mFn(fn)
        , mUser(user)
    {
    }
    void phaseStart(char const* phase, char const* parent, int32_t steps) noexcept override
    {
        mFn(mUser, 0, phase, parent, steps);
    }
    bool stepComplete(char const* phase, int32_t step) noexcept override
    {
        mFn(mUser, 1, phase, nullptr, step);
        return true;
    }
    void phaseFinish(char const* phase) noexcept override
    {
        mFn(mUser, 2, phase, nullptr, 0);
    }

private:
    s6_progress_fn mFn;
    void* mUser;
};
#endif

template <typename T>
struct Deleter
{
    void operator()(T* p) const noexcept
    {
        delete p;
    }
};
template <typename T>
using Owned = std::unique_ptr<T, Deleter<T>>;

Dims to_dims(int32_t rank, int64_t const* d) noexcept
{
    Dims out{};
    out.nbDims = rank;
    using Elem = std::remove_reference_t<decltype(out.d[0])>;
    for (int32_t i = 0; i < rank && i < Dims::MAX_DIMS; ++i)
    {
        out.d[i] = static_cast<Elem>(d[i]);
    }
    return out;
}

void from_dims(Dims const& in, int32_t* rank, int64_t* d) noexcept
{
    *rank = in.nbDims;
    for (int32_t i = 0; i < in.nbDims && i < Dims::MAX_DIMS; ++i)
    {
        d[i] = static_cast<int64_t>(in.d[i]);
    }
}

#if S6_HAVE_ONNX_PARSER
// Tells the caller every layer of the parsed network, with the plugin type of plugin layers: how
// s6-engine shows (and its tests check) that each S6Scan node became a plugin layer.
void report_layers(INetworkDefinition& network, s6_layer_fn fn, void* user)
{
    for (int32_t i = 0; i < network.getNbLayers(); ++i)
    {
        ILayer* layer = network.getLayer(i);
        if (layer == nullptr)
        {
            continue;
        }
        int32_t kind = 0;
        char const* plugin = nullptr;
        if (layer->getType() == LayerType::kPLUGIN_V2)
        {
            kind = 1;
            // A V2 plugin's layer is deprecated from TensorRT 10 on, but still what it becomes.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
            plugin = static_cast<IPluginV2Layer*>(layer)->getPlugin().getPluginType();
#pragma GCC diagnostic pop
        }
#if S6_API10
        else if (layer->getType() == LayerType::kPLUGIN_V3)
        {
            kind = 2;
            IPluginCapability* core
                = static_cast<IPluginV3Layer*>(layer)->getPlugin().getCapabilityInterface(PluginCapabilityType::kCORE);
            plugin = core != nullptr ? static_cast<IPluginV3OneCore*>(core)->getPluginName() : nullptr;
        }
#endif
        ITensor const* out = layer->getNbOutputs() > 0 ? layer->getOutput(0) : nullptr;
        int32_t const dtype = out != nullptr ? static_cast<int32_t>(out->getType()) : -1;
        fn(user, i, kind, layer->getName(), plugin, dtype);
    }
}
#endif

} // namespace

extern "C" int32_t S6_GLUE(header_version)(void)
{
    return static_cast<int32_t>(NV_TENSORRT_VERSION);
}

extern "C" int32_t S6_GLUE(is_rtx)(void)
{
    return S6_RTX;
}

extern "C" int32_t S6_GLUE(has_onnx_parser)(void)
{
    return S6_HAVE_ONNX_PARSER;
}

extern "C" int32_t S6_GLUE(has_creator)(void* get_plugin_registry, char const* name, char const* version, char const* ns)
{
    if (get_plugin_registry == nullptr)
    {
        return -1;
    }
    IPluginRegistry* reg = reinterpret_cast<RegistryFn>(get_plugin_registry)();
    if (reg == nullptr)
    {
        return -1;
    }
#if S6_API10
    return reg->getCreator(name, version, ns) != nullptr ? 1 : 0;
#else
    return reg->getPluginCreator(name, version, ns) != nullptr ? 1 : 0;
#endif
}

extern "C" int32_t S6_GLUE(load_plugin_library)(void* get_plugin_registry, char const* path, char* err, size_t err_len)
{
#if S6_TRT_AT_LEAST(8, 6)
    IPluginRegistry* reg = get_plugin_registry ? reinterpret_cast<RegistryFn>(get_plugin_registry)() : nullptr;
    if (reg == nullptr)
    {
        set_err(err, err_len, "getPluginRegistry() returned no registry");
        return 1;
    }
    if (reg->loadLibrary(path) == nullptr)
    {
        set_err(err, err_len, std::string("IPluginRegistry::loadLibrary refused ") + path);
        return 1;
    }
    return 0;
#else
    (void) get_plugin_registry;
    (void) path;
    set_err(err, err_len, "IPluginRegistry::loadLibrary needs TensorRT 8.6 or newer");
    return 1;
#endif
}

extern "C" void S6_GLUE(blob_free)(S6Blob* blob)
{
    if (blob != nullptr && blob->handle != nullptr)
    {
        delete static_cast<IHostMemory*>(blob->handle);
        blob->handle = nullptr;
        blob->data = nullptr;
        blob->size = 0;
    }
}

extern "C" int32_t S6_GLUE(build)(S6BuildParams const* p, S6Blob* engine, S6Blob* timing_cache, char* err, size_t err_len)
{
#if S6_HAVE_ONNX_PARSER
    try
    {
        Logger logger(p->log, p->user);
        void* raw = reinterpret_cast<CreateFn>(p->create_builder)(&logger, static_cast<int32_t>(NV_TENSORRT_VERSION));
        if (!created(raw, logger, 0))
        {
            // Not deleted: the pointer may not be an object.
            set_err(err, err_len, with_log("createInferBuilder failed", logger));
            return 1;
        }
        Owned<IBuilder> builder(static_cast<IBuilder*>(raw));
        uint32_t flags = 0;
#if !S6_API10
        // Explicit batch is required for ONNX before 10 (and the only mode from 10 on).
        flags |= 1U << static_cast<uint32_t>(NetworkDefinitionCreationFlag::kEXPLICIT_BATCH);
#elif !S6_STRONGLY_TYPED_ONLY
        if (p->precision == S6_PRECISION_STRONG)
        {
            flags |= 1U << static_cast<uint32_t>(NetworkDefinitionCreationFlag::kSTRONGLY_TYPED);
        }
#endif
        // TensorRT 11 and TensorRT-RTX: every network is strongly typed; no flag.
        Owned<INetworkDefinition> network(builder->createNetworkV2(flags));
        if (!network)
        {
            set_err(err, err_len, with_log("createNetworkV2 failed", logger));
            return 1;
        }
        int32_t const errorsBefore = logger.errorCount();
        void* rawParser
            = reinterpret_cast<CreateParserFn>(p->create_parser)(network.get(), &logger, NV_ONNX_PARSER_VERSION);
        if (!created(rawParser, logger, errorsBefore))
        {
            set_err(err, err_len, with_log("createNvOnnxParser failed", logger));
            return 1;
        }
        Owned<nvonnxparser::IParser> parser(static_cast<nvonnxparser::IParser*>(rawParser));
        if (!parser->parseFromFile(p->onnx_path, static_cast<int>(ILogger::Severity::kWARNING)))
        {
            std::string msg = std::string("ONNX parser refused ") + p->onnx_path;
            for (int32_t i = 0; i < parser->getNbErrors(); ++i)
            {
                auto const* e = parser->getError(i);
                msg += std::string("; node ") + std::to_string(e->node()) + ": " + e->desc();
            }
            set_err(err, err_len, msg);
            return 1;
        }
        if (p->layer != nullptr)
        {
            report_layers(*network, p->layer, p->user);
        }
        Owned<IBuilderConfig> config(builder->createBuilderConfig());
        if (!config)
        {
            set_err(err, err_len, with_log("createBuilderConfig failed", logger));
            return 1;
        }
        IOptimizationProfile* profile = p->n_inputs > 0 ? builder->createOptimizationProfile() : nullptr;
        for (int32_t i = 0; i < p->n_inputs; ++i)
        {
            S6ProfileInput const& in = p->inputs[i];
            bool ok = profile->setDimensions(in.name, OptProfileSelector::kMIN, to_dims(in.rank, in.min))
                && profile->setDimensions(in.name, OptProfileSelector::kOPT, to_dims(in.rank, in.opt))
                && profile->setDimensions(in.name, OptProfileSelector::kMAX, to_dims(in.rank, in.max));
            if (!ok)
            {
                set_err(err, err_len, with_log(std::string("profile refused for input ") + in.name, logger));
                return 1;
            }
        }
        if (profile != nullptr && config->addOptimizationProfile(profile) < 0)
        {
            set_err(err, err_len, with_log("addOptimizationProfile failed", logger));
            return 1;
        }
#if !S6_STRONGLY_TYPED_ONLY
        if (p->precision == S6_PRECISION_FP16)
        {
            config->setFlag(BuilderFlag::kFP16);
        }
#endif
#if NV_TENSORRT_MAJOR >= 9 && !S6_STRONGLY_TYPED_ONLY
        if (p->precision == S6_PRECISION_BF16)
        {
            config->setFlag(BuilderFlag::kBF16);
        }
#endif
        if (p->workspace_bytes > 0)
        {
            config->setMemoryPoolLimit(MemoryPoolType::kWORKSPACE, static_cast<size_t>(p->workspace_bytes));
        }
#if S6_RTX
        // TensorRT-RTX has no timing cache (it deprecates the API; kernels are chosen without
        // timing), but a list of GPU architectures to compile for.
        if (p->timing_cache != nullptr)
        {
            set_err(err, err_len, "TensorRT-RTX has no timing cache");
            return 1;
        }
        if (p->n_compute_capabilities > 0)
        {
            bool ok = config->setNbComputeCapabilities(p->n_compute_capabilities);
            for (int32_t i = 0; ok && i < p->n_compute_capabilities; ++i)
            {
                ok = config->setComputeCapability(static_cast<ComputeCapability>(p->compute_capabilities[i]), i);
            }
            if (!ok)
            {
                set_err(err, err_len, with_log("compute capability refused", logger));
                return 1;
            }
        }
#else
        if (p->n_compute_capabilities > 0)
        {
            set_err(err, err_len, "compute capabilities are a TensorRT-RTX setting");
            return 1;
        }
        Owned<ITimingCache> cache(config->createTimingCache(p->timing_cache, p->timing_cache ? p->timing_cache_size : 0));
        if (cache && !config->setTimingCache(*cache, false))
        {
            set_err(err, err_len, with_log("the timing cache does not fit this TensorRT/GPU", logger));
            return 1;
        }
#endif
#if S6_API10
        std::unique_ptr<Progress> progress;
        if (p->progress != nullptr)
        {
            progress.reset(new Progress(p->progress, p->user));
            config->setProgressMonitor(progress.get());
        }
#endif
        IHostMemory* plan = builder->buildSerializedNetwork(*network, *config);
        if (plan == nullptr || plan->size() == 0)
        {
            delete plan;
            set_err(err, err_len, with_log("buildSerializedNetwork failed", logger));
            return 1;
        }
        engine->handle = plan;
        engine->data = plan->data();
        engine->size = plan->size();
        timing_cache->handle = nullptr;
        timing_cache->data = nullptr;
        timing_cache->size = 0;
#if !S6_RTX
        if (ITimingCache const* used = config->getTimingCache())
        {
            if (IHostMemory* blob = used->serialize())
            {
                timing_cache->handle = blob;
                timing_cache->data = blob->data();
                timing_cache->size = blob->size();
            }
        }
#endif
        return 0;
    }
    catch (std::exception const& e)
    {
        set_err(err, err_len, std::string("engine build: ") + e.what());
        return 1;
    }
    catch (...)
    {
        set_err(err, err_len, "engine build: unknown C++ exception");
        return 1;
    }
#else
    (void) p;
    (void) engine;
    (void) timing_cache;
    set_err(err, err_len, "built without NvOnnxParser.h");
    return 1;
#endif
}

namespace {

// Behind the opaque S6Runner of the C interface: a type of internal linkage, so that the two
// backends' runners (of different layouts) never share a symbol.
struct Runner
{
    explicit Runner(s6_log_fn fn, void* user)
        : logger(fn, user)
    {
    }
    // Declaration order = reverse destruction order: context, engine, runtime, then the logger.
    Logger logger;
    Owned<IRuntime> runtime;
    Owned<ICudaEngine> engine;
    Owned<IExecutionContext> context;
};

Runner* runner(S6Runner* r) noexcept
{
    return reinterpret_cast<Runner*>(r);
}
Runner const* runner(S6Runner const* r) noexcept
{
    return reinterpret_cast<Runner const*>(r);
}

} // namespace

extern "C" S6Runner* S6_GLUE(runner_new)(
    void* create_runtime, void const* data, size_t size, s6_log_fn log, void* user, char* err, size_t err_len)
{
    try
    {
        std::unique_ptr<Runner> r(new Runner(log, user));
        void* raw = reinterpret_cast<CreateFn>(create_runtime)(&r->logger, static_cast<int32_t>(NV_TENSORRT_VERSION));
        if (!created(raw, r->logger, 0))
        {
            // Not deleted: the pointer may not be an object.
            set_err(err, err_len, with_log("createInferRuntime failed", r->logger));
            return nullptr;
        }
        r->runtime.reset(static_cast<IRuntime*>(raw));
        r->engine.reset(r->runtime->deserializeCudaEngine(data, size));
        if (!r->engine)
        {
            set_err(err, err_len, with_log("deserializeCudaEngine failed", r->logger));
            return nullptr;
        }
        r->context.reset(r->engine->createExecutionContext());
        if (!r->context)
        {
            set_err(err, err_len, with_log("createExecutionContext failed", r->logger));
            return nullptr;
        }
        return reinterpret_cast<S6Runner*>(r.release());
    }
    catch (...)
    {
        set_err(err, err_len, "engine load: C++ exception");
        return nullptr;
    }
}

extern "C" void S6_GLUE(runner_free)(S6Runner* r)
{
    delete runner(r);
}

extern "C" int32_t S6_GLUE(runner_num_io)(S6Runner const* r)
{
    return runner(r)->engine->getNbIOTensors();
}

extern "C" int32_t S6_GLUE(runner_io)(
    S6Runner const* r, int32_t i, char const** name, int32_t* is_input, int32_t* dtype, int32_t* rank, int64_t* dims)
{
    char const* n = runner(r)->engine->getIOTensorName(i);
    if (n == nullptr)
    {
        return 1;
    }
    *name = n;
    *is_input = runner(r)->engine->getTensorIOMode(n) == TensorIOMode::kINPUT ? 1 : 0;
    *dtype = static_cast<int32_t>(runner(r)->engine->getTensorDataType(n));
    from_dims(runner(r)->engine->getTensorShape(n), rank, dims);
    return 0;
}

extern "C" int32_t S6_GLUE(runner_set_input_shape)(S6Runner* r, char const* name, int32_t rank, int64_t const* dims)
{
    return runner(r)->context->setInputShape(name, to_dims(rank, dims)) ? 0 : 1;
}

extern "C" int32_t S6_GLUE(runner_shape)(S6Runner const* r, char const* name, int32_t* rank, int64_t* dims)
{
    from_dims(runner(r)->context->getTensorShape(name), rank, dims);
    return *rank < 0 ? 1 : 0;
}

extern "C" int32_t S6_GLUE(runner_set_address)(S6Runner* r, char const* name, void* ptr)
{
    return runner(r)->context->setTensorAddress(name, ptr) ? 0 : 1;
}

extern "C" int32_t S6_GLUE(runner_enqueue)(S6Runner* r, void* stream)
{
    return runner(r)->context->enqueueV3(static_cast<cudaStream_t>(stream)) ? 0 : 1;
}
