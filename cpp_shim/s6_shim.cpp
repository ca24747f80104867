// Method bodies of the S6Scan plugin and creator (see s6_shim.h), the logger plumbing, and the
// internal C functions behind the library's exports (defined in Rust: plugin/trt/registration.rs).
#include "s6plugin/cpp_shim/s6_shim.h"

#include <array>
#include <atomic>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <exception>

namespace s6 {
namespace {

using nvinfer1::ILogger;
using Severity = nvinfer1::ILogger::Severity;

// nvinfer1::ILoggerFinder (TensorRT >= 8.6) has this one virtual method first in its vtable;
// declared here so that older headers build too.
class LoggerFinderAbi {
public:
    virtual ILogger* findLogger() = 0;

protected:
    virtual ~LoggerFinderAbi() = default;
};

using GetLoggerFn = ILogger* (*) ();
using GetPluginRegistryFn = nvinfer1::IPluginRegistry* (*) ();

std::atomic<LoggerFinderAbi*> gLoggerFinder{nullptr};
std::atomic<GetLoggerFn> gGetLogger{nullptr};

// Logs through TensorRT's logger: the finder TensorRT gave us (dynamic loading), else the global
// getLogger() found at load time (static loading), else stderr for warnings and errors.
void log(Severity severity, std::string const& message) noexcept
{
    try
    {
        ILogger* logger = nullptr;
        if (LoggerFinderAbi* finder = gLoggerFinder.load())
        {
            logger = finder->findLogger();
        }
        if (logger == nullptr)
        {
            if (GetLoggerFn get = gGetLogger.load())
            {
                logger = get();
            }
        }
        if (logger != nullptr)
        {
            logger->log(severity, message.c_str());
        }
        else if (severity <= Severity::kWARNING)
        {
            std::fprintf(stderr, "[s6plugin] %s\n", message.c_str());
        }
    }
    catch (...)
    {
    }
}

std::string describeException() noexcept
{
    try
    {
        throw;
    }
    catch (rust::Error const& e)
    {
        return e.what();
    }
    catch (std::exception const& e)
    {
        return std::string("C++ exception: ") + e.what();
    }
    catch (...)
    {
        return "unknown C++ exception";
    }
}

void logFailure(char const* layer, char const* method, std::string const& what) noexcept
{
    try
    {
        log(Severity::kERROR,
            std::string("S6Scan plugin '") + (layer ? layer : "") + "' " + method + ": " + what);
    }
    catch (...)
    {
    }
}

constexpr int32_t kMaxTensors = 16; // 9 inputs + 2 outputs at most

TensorDesc toDesc(nvinfer1::PluginTensorDesc const& d) noexcept
{
    TensorDesc t{};
    t.nb_dims = d.dims.nbDims;
    for (int32_t i = 0; i < d.dims.nbDims && i < 8; ++i)
    {
        t.dims[i] = static_cast<int64_t>(d.dims.d[i]);
    }
    t.dtype = static_cast<int32_t>(d.type);
    t.format = static_cast<int32_t>(d.format);
    return t;
}

std::array<int64_t, 8> toArray(nvinfer1::Dims const& d) noexcept
{
    std::array<int64_t, 8> a{};
    for (int32_t i = 0; i < d.nbDims && i < 8; ++i)
    {
        a[i] = static_cast<int64_t>(d.d[i]);
    }
    return a;
}

DynDesc toDynDesc(nvinfer1::DynamicPluginTensorDesc const& d) noexcept
{
    DynDesc t{};
    t.desc = toDesc(d.desc);
    t.min = toArray(d.min);
    t.max = toArray(d.max);
    return t;
}

bool countsOk(int32_t nbInputs, int32_t nbOutputs) noexcept
{
    return nbInputs >= 0 && nbOutputs >= 0 && nbInputs + nbOutputs <= kMaxTensors;
}

} // namespace

// ---------------------------------------------------------------------------------------------
// S6ScanPlugin

S6ScanPlugin::S6ScanPlugin(rust::Box<PluginCore> core, std::string layer, std::string ns)
    : mCore(std::move(core))
    , mLayer(std::move(layer))
    , mNamespace(std::move(ns))
{
}

void S6ScanPlugin::fail(char const* method, char const* what) const noexcept
{
    logFailure(mLayer.c_str(), method, what);
}

nvinfer1::AsciiChar const* S6ScanPlugin::getPluginType() const noexcept
{
    return kPluginName;
}

nvinfer1::AsciiChar const* S6ScanPlugin::getPluginVersion() const noexcept
{
    return kPluginVersion;
}

int32_t S6ScanPlugin::getNbOutputs() const noexcept
{
    return mCore->num_outputs();
}

int32_t S6ScanPlugin::initialize() noexcept
{
    return 0;
}

void S6ScanPlugin::terminate() noexcept {}

size_t S6ScanPlugin::getSerializationSize() const noexcept
{
    return mCore->blob_len();
}

void S6ScanPlugin::serialize(void* buffer) const noexcept
{
    try
    {
        if (buffer == nullptr)
        {
            fail("serialize", "buffer is null");
            return;
        }
        mCore->write_blob(rust::Slice<uint8_t>(static_cast<uint8_t*>(buffer), mCore->blob_len()));
    }
    catch (...)
    {
        fail("serialize", describeException().c_str());
    }
}

void S6ScanPlugin::destroy() noexcept
{
    delete this;
}

void S6ScanPlugin::setPluginNamespace(nvinfer1::AsciiChar const* ns) noexcept
{
    try
    {
        mNamespace = ns ? ns : "";
    }
    catch (...)
    {
        fail("setPluginNamespace", describeException().c_str());
    }
}

nvinfer1::AsciiChar const* S6ScanPlugin::getPluginNamespace() const noexcept
{
    return mNamespace.c_str();
}

nvinfer1::DataType S6ScanPlugin::getOutputDataType(
    int32_t index, nvinfer1::DataType const* inputTypes, int32_t nbInputs) const noexcept
{
    try
    {
        if (inputTypes == nullptr || nbInputs < 0 || nbInputs > kMaxTensors)
        {
            fail("getOutputDataType", "bad input type array");
            return nvinfer1::DataType::kFLOAT;
        }
        std::array<int32_t, kMaxTensors> types{};
        for (int32_t i = 0; i < nbInputs; ++i)
        {
            types[i] = static_cast<int32_t>(inputTypes[i]);
        }
        int32_t const t = mCore->output_dtype(index, rust::Slice<int32_t const>(types.data(), nbInputs));
        return static_cast<nvinfer1::DataType>(t);
    }
    catch (...)
    {
        fail("getOutputDataType", describeException().c_str());
        return nvinfer1::DataType::kFLOAT;
    }
}

nvinfer1::IPluginV2DynamicExt* S6ScanPlugin::clone() const noexcept
{
    try
    {
        return new S6ScanPlugin(mCore->clone_core(), mLayer, mNamespace);
    }
    catch (...)
    {
        fail("clone", describeException().c_str());
        return nullptr;
    }
}

nvinfer1::DimsExprs S6ScanPlugin::getOutputDimensions(int32_t outputIndex, nvinfer1::DimsExprs const* inputs,
    int32_t nbInputs, nvinfer1::IExprBuilder& /*exprBuilder*/) noexcept
{
    nvinfer1::DimsExprs out{};
    out.nbDims = -1;
    try
    {
        if (inputs == nullptr || !countsOk(nbInputs, 0))
        {
            fail("getOutputDimensions", "bad input array");
            return out;
        }
        std::array<int32_t, kMaxTensors> ranks{};
        for (int32_t i = 0; i < nbInputs; ++i)
        {
            ranks[i] = inputs[i].nbDims;
        }
        // Every output dimension is an input dimension (Rust says which): no IExprBuilder
        // arithmetic is needed, and the expressions stay as symbolic as TensorRT made them.
        rust::Vec<DimRef> refs
            = mCore->output_dims(outputIndex, rust::Slice<int32_t const>(ranks.data(), nbInputs));
        if (refs.size() > static_cast<size_t>(nvinfer1::Dims::MAX_DIMS))
        {
            fail("getOutputDimensions", "too many output dimensions");
            return out;
        }
        int32_t k = 0;
        for (DimRef const& r : refs)
        {
            if (r.input < 0 || r.input >= nbInputs || r.axis < 0 || r.axis >= inputs[r.input].nbDims)
            {
                fail("getOutputDimensions", "dimension reference out of range");
                out.nbDims = -1;
                return out;
            }
            out.d[k++] = inputs[r.input].d[r.axis];
        }
        out.nbDims = k;
        return out;
    }
    catch (...)
    {
        fail("getOutputDimensions", describeException().c_str());
        out.nbDims = -1;
        return out;
    }
}

bool S6ScanPlugin::supportsFormatCombination(
    int32_t pos, nvinfer1::PluginTensorDesc const* inOut, int32_t nbInputs, int32_t nbOutputs) noexcept
{
    try
    {
        if (inOut == nullptr || !countsOk(nbInputs, nbOutputs))
        {
            fail("supportsFormatCombination", "bad tensor array");
            return false;
        }
        std::array<TensorDesc, kMaxTensors> descs{};
        int32_t const n = nbInputs + nbOutputs;
        for (int32_t i = 0; i < n; ++i)
        {
            descs[i] = toDesc(inOut[i]);
        }
        return mCore->supports_format(pos, rust::Slice<TensorDesc const>(descs.data(), n), nbInputs, nbOutputs);
    }
    catch (...)
    {
        fail("supportsFormatCombination", describeException().c_str());
        return false;
    }
}

void S6ScanPlugin::configurePlugin(nvinfer1::DynamicPluginTensorDesc const* in, int32_t nbInputs,
    nvinfer1::DynamicPluginTensorDesc const* out, int32_t nbOutputs) noexcept
{
    // configurePlugin has no way to fail but the log: TensorRT then fails the build when
    // supportsFormatCombination / enqueue refuse what was configured.
    try
    {
        if (in == nullptr || out == nullptr || !countsOk(nbInputs, nbOutputs))
        {
            fail("configurePlugin", "bad tensor arrays");
            return;
        }
        std::array<DynDesc, kMaxTensors> ins{};
        std::array<DynDesc, kMaxTensors> outs{};
        for (int32_t i = 0; i < nbInputs; ++i)
        {
            ins[i] = toDynDesc(in[i]);
        }
        for (int32_t i = 0; i < nbOutputs; ++i)
        {
            outs[i] = toDynDesc(out[i]);
        }
        mCore->configure(rust::Slice<DynDesc const>(ins.data(), nbInputs),
            rust::Slice<DynDesc const>(outs.data(), nbOutputs));
    }
    catch (...)
    {
        fail("configurePlugin", describeException().c_str());
    }
}

size_t S6ScanPlugin::getWorkspaceSize(nvinfer1::PluginTensorDesc const* inputs, int32_t nbInputs,
    nvinfer1::PluginTensorDesc const* outputs, int32_t nbOutputs) const noexcept
{
    try
    {
        if (inputs == nullptr || outputs == nullptr || !countsOk(nbInputs, nbOutputs))
        {
            fail("getWorkspaceSize", "bad tensor arrays");
            return 0;
        }
        std::array<TensorDesc, kMaxTensors> ins{};
        std::array<TensorDesc, kMaxTensors> outs{};
        for (int32_t i = 0; i < nbInputs; ++i)
        {
            ins[i] = toDesc(inputs[i]);
        }
        for (int32_t i = 0; i < nbOutputs; ++i)
        {
            outs[i] = toDesc(outputs[i]);
        }
        return mCore->workspace_size(rust::Slice<TensorDesc const>(ins.data(), nbInputs),
            rust::Slice<TensorDesc const>(outs.data(), nbOutputs));
    }
    catch (...)
    {
        fail("getWorkspaceSize", describeException().c_str());
        return 0;
    }
}

int32_t S6ScanPlugin::enqueue(nvinfer1::PluginTensorDesc const* inputDesc, nvinfer1::PluginTensorDesc const* outputDesc,
    void const* const* inputs, void* const* outputs, void* workspace, cudaStream_t stream) noexcept
{
    try
    {
        int32_t const nbInputs = mCore->num_inputs();
        int32_t const nbOutputs = mCore->num_outputs();
        if (inputDesc == nullptr || outputDesc == nullptr || inputs == nullptr || outputs == nullptr)
        {
            fail("enqueue", "null descriptor or buffer array");
            return 1;
        }
        std::array<TensorDesc, kMaxTensors> ins{};
        std::array<TensorDesc, kMaxTensors> outs{};
        std::array<size_t, kMaxTensors> inPtrs{};
        std::array<size_t, kMaxTensors> outPtrs{};
        for (int32_t i = 0; i < nbInputs; ++i)
        {
            ins[i] = toDesc(inputDesc[i]);
            inPtrs[i] = reinterpret_cast<size_t>(inputs[i]);
        }
        for (int32_t i = 0; i < nbOutputs; ++i)
        {
            outs[i] = toDesc(outputDesc[i]);
            outPtrs[i] = reinterpret_cast<size_t>(outputs[i]);
        }
        mCore->enqueue(rust::Slice<TensorDesc const>(ins.data(), nbInputs),
            rust::Slice<TensorDesc const>(outs.data(), nbOutputs),
            rust::Slice<size_t const>(inPtrs.data(), nbInputs), rust::Slice<size_t const>(outPtrs.data(), nbOutputs),
            reinterpret_cast<size_t>(workspace), reinterpret_cast<size_t>(stream));
        return 0;
    }
    catch (...)
    {
        fail("enqueue", describeException().c_str());
        return 1;
    }
}

// ---------------------------------------------------------------------------------------------
// S6ScanCreator

S6ScanCreator::S6ScanCreator()
{
    rust::Vec<rust::String> names = field_names();
    mNames.reserve(names.size());
    for (rust::String const& n : names)
    {
        mNames.emplace_back(std::string(n));
    }
    // Every field is one INT (kINT32), as TensorRT's ONNX parser passes INT node attributes.
    for (std::string const& n : mNames)
    {
        mFields.emplace_back(n.c_str(), nullptr, nvinfer1::PluginFieldType::kINT32, 1);
    }
    mCollection.nbFields = static_cast<int32_t>(mFields.size());
    mCollection.fields = mFields.data();
}

nvinfer1::AsciiChar const* S6ScanCreator::getPluginName() const noexcept
{
    return kPluginName;
}

nvinfer1::AsciiChar const* S6ScanCreator::getPluginVersion() const noexcept
{
    return kPluginVersion;
}

nvinfer1::PluginFieldCollection const* S6ScanCreator::getFieldNames() noexcept
{
    return &mCollection;
}

nvinfer1::IPluginV2* S6ScanCreator::createPlugin(
    nvinfer1::AsciiChar const* name, nvinfer1::PluginFieldCollection const* fc) noexcept
{
    try
    {
        rust::Box<FieldSet> fields = new_field_set();
        if (fc != nullptr)
        {
            if (fc->nbFields < 0 || (fc->nbFields > 0 && fc->fields == nullptr))
            {
                logFailure(name, "createPlugin", "bad PluginFieldCollection");
                return nullptr;
            }
            for (int32_t i = 0; i < fc->nbFields; ++i)
            {
                nvinfer1::PluginField const& f = fc->fields[i];
                char const* fieldName = f.name ? f.name : "";
                fields->add_field(rust::Slice<uint8_t const>(reinterpret_cast<uint8_t const*>(fieldName),
                                      std::strlen(fieldName)),
                    static_cast<int32_t>(f.type), f.length, static_cast<uint8_t const*>(f.data));
            }
        }
        rust::Box<PluginCore> core = fields->build();
        log(Severity::kVERBOSE,
            std::string("S6Scan plugin '") + (name ? name : "") + "' created: " + std::string(core->describe()));
        return new S6ScanPlugin(std::move(core), name ? name : "", mNamespace);
    }
    catch (...)
    {
        logFailure(name, "createPlugin", describeException());
        return nullptr;
    }
}

nvinfer1::IPluginV2* S6ScanCreator::deserializePlugin(
    nvinfer1::AsciiChar const* name, void const* serialData, size_t serialLength) noexcept
{
    try
    {
        if (serialData == nullptr && serialLength != 0)
        {
            logFailure(name, "deserializePlugin", "null data");
            return nullptr;
        }
        rust::Box<PluginCore> core = core_from_blob(rust::Slice<uint8_t const>(
            serialLength ? static_cast<uint8_t const*>(serialData) : nullptr, serialLength));
        return new S6ScanPlugin(std::move(core), name ? name : "", mNamespace);
    }
    catch (...)
    {
        logFailure(name, "deserializePlugin", describeException());
        return nullptr;
    }
}

void S6ScanCreator::setPluginNamespace(nvinfer1::AsciiChar const* ns) noexcept
{
    try
    {
        mNamespace = ns ? ns : "";
    }
    catch (...)
    {
        logFailure("", "setPluginNamespace", describeException());
    }
}

nvinfer1::AsciiChar const* S6ScanCreator::getPluginNamespace() const noexcept
{
    return mNamespace.c_str();
}

namespace {

// One creator for the life of the process, never destroyed: registries may hold it past the
// static destructors of this library.
S6ScanCreator* creator() noexcept
{
    try
    {
        static S6ScanCreator* instance = new S6ScanCreator();
        return instance;
    }
    catch (...)
    {
        log(Severity::kERROR, "S6Scan: could not create the plugin creator: " + describeException());
        return nullptr;
    }
}

} // namespace
} // namespace s6

// Internal entry points; exported under TensorRT's names by Rust (plugin/trt/registration.rs).
extern "C" {

// `v3Interface` != 0: an IPluginCreatorInterface* array (getCreators, TensorRT >= 10);
// else an IPluginCreator* array (getPluginCreators, TensorRT 8.6/9.x).
void* const* s6_shim_creators(int32_t v3Interface, int32_t* nbCreators) noexcept
{
    s6::S6ScanCreator* c = s6::creator();
    if (nbCreators != nullptr)
    {
        *nbCreators = c ? 1 : 0;
    }
    if (c == nullptr)
    {
        return nullptr;
    }
#if NV_TENSORRT_MAJOR >= 10
    if (v3Interface != 0)
    {
        static nvinfer1::IPluginCreatorInterface* v3List[1]
            = {static_cast<nvinfer1::IPluginCreatorInterface*>(static_cast<nvinfer1::IPluginCreator*>(c))};
        return reinterpret_cast<void* const*>(v3List);
    }
#else
    (void) v3Interface;
#endif
    static nvinfer1::IPluginCreator* v2List[1] = {static_cast<nvinfer1::IPluginCreator*>(c)};
    return reinterpret_cast<void* const*>(v2List);
}

void s6_shim_set_logger_finder(void* finder) noexcept
{
    s6::gLoggerFinder.store(static_cast<s6::LoggerFinderAbi*>(finder));
}

int32_t s6_shim_register_static(void* getPluginRegistry, void* getLogger) noexcept
{
    try
    {
        s6::gGetLogger.store(reinterpret_cast<s6::GetLoggerFn>(getLogger));
        auto const getRegistry = reinterpret_cast<s6::GetPluginRegistryFn>(getPluginRegistry);
        nvinfer1::IPluginRegistry* registry = getRegistry ? getRegistry() : nullptr;
        s6::S6ScanCreator* c = s6::creator();
        if (registry == nullptr || c == nullptr)
        {
            return 0;
        }
#if NV_TENSORRT_MAJOR >= 10
        bool const ok = registry->registerCreator(static_cast<nvinfer1::IPluginCreatorInterface&>(*c), "");
#else
        bool const ok = registry->registerCreator(*c, "");
#endif
        return ok ? 1 : 0;
    }
    catch (...)
    {
        s6::log(s6::Severity::kERROR, "S6Scan: static registration failed: " + s6::describeException());
        return 0;
    }
}

} // extern "C"
