// Method bodies of the V2 plugin and creator (see s6_plugin_v2.h).
#include "s6plugin/cpp_shim/s6_plugin_v2.h"

#if S6_HAS_V2

#include <cstring>

namespace s6 {

// ---------------------------------------------------------------------------------------------
// PluginV2

PluginV2::PluginV2(OpInfo const& op, rust::Box<PluginCore> core, std::string layer, std::string ns)
    : mOp(op)
    , mCore(std::move(core))
    , mLayer(std::move(layer))
    , mNamespace(std::move(ns))
{
}

void PluginV2::fail(char const* method, char const* what) const noexcept
{
    logFailure(mOp, mLayer.c_str(), method, what);
}

nvinfer1::AsciiChar const* PluginV2::getPluginType() const noexcept
{
    return mOp.name.c_str();
}

nvinfer1::AsciiChar const* PluginV2::getPluginVersion() const noexcept
{
    return mOp.version.c_str();
}

int32_t PluginV2::getNbOutputs() const noexcept
{
    return mCore->num_outputs();
}

int32_t PluginV2::initialize() noexcept
{
    return 0;
}

void PluginV2::terminate() noexcept {}

size_t PluginV2::getSerializationSize() const noexcept
{
    return mCore->blob_len();
}

void PluginV2::serialize(void* buffer) const noexcept
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

void PluginV2::destroy() noexcept
{
    delete this;
}

void PluginV2::setPluginNamespace(nvinfer1::AsciiChar const* ns) noexcept
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

nvinfer1::AsciiChar const* PluginV2::getPluginNamespace() const noexcept
{
    return mNamespace.c_str();
}

nvinfer1::DataType PluginV2::getOutputDataType(
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

nvinfer1::IPluginV2DynamicExt* PluginV2::clone() const noexcept
{
    try
    {
        return new PluginV2(mOp, mCore->clone_core(), mLayer, mNamespace);
    }
    catch (...)
    {
        fail("clone", describeException().c_str());
        return nullptr;
    }
}

nvinfer1::DimsExprs PluginV2::getOutputDimensions(int32_t outputIndex, nvinfer1::DimsExprs const* inputs,
    int32_t nbInputs, nvinfer1::IExprBuilder& /*exprBuilder*/) noexcept
{
    try
    {
        return outputDims(*mCore, outputIndex, inputs, nbInputs);
    }
    catch (...)
    {
        fail("getOutputDimensions", describeException().c_str());
        nvinfer1::DimsExprs out{};
        out.nbDims = -1;
        return out;
    }
}

bool PluginV2::supportsFormatCombination(
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

void PluginV2::configurePlugin(nvinfer1::DynamicPluginTensorDesc const* in, int32_t nbInputs,
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

size_t PluginV2::getWorkspaceSize(nvinfer1::PluginTensorDesc const* inputs, int32_t nbInputs,
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

int32_t PluginV2::enqueue(nvinfer1::PluginTensorDesc const* inputDesc, nvinfer1::PluginTensorDesc const* outputDesc,
    void const* const* inputs, void* const* outputs, void* workspace, cudaStream_t stream) noexcept
{
    try
    {
        enqueueCore(*mCore, inputDesc, outputDesc, inputs, outputs, workspace, stream);
        return 0;
    }
    catch (...)
    {
        fail("enqueue", describeException().c_str());
        return 1;
    }
}

// ---------------------------------------------------------------------------------------------
// CreatorV2

CreatorV2::CreatorV2(OpInfo const& op)
    : mOp(op)
    , mFieldNames(op.op)
{
}

nvinfer1::AsciiChar const* CreatorV2::getPluginName() const noexcept
{
    return mOp.name.c_str();
}

nvinfer1::AsciiChar const* CreatorV2::getPluginVersion() const noexcept
{
    return mOp.version.c_str();
}

nvinfer1::PluginFieldCollection const* CreatorV2::getFieldNames() noexcept
{
    return mFieldNames.collection();
}

nvinfer1::IPluginV2* CreatorV2::createPlugin(
    nvinfer1::AsciiChar const* name, nvinfer1::PluginFieldCollection const* fc) noexcept
{
    try
    {
        return new PluginV2(mOp, coreFromFields(mOp, name, fc), name ? name : "", mNamespace);
    }
    catch (...)
    {
        logFailure(mOp, name, "createPlugin", describeException());
        return nullptr;
    }
}

nvinfer1::IPluginV2* CreatorV2::deserializePlugin(
    nvinfer1::AsciiChar const* name, void const* serialData, size_t serialLength) noexcept
{
    try
    {
        if (serialData == nullptr && serialLength != 0)
        {
            logFailure(mOp, name, "deserializePlugin", "null data");
            return nullptr;
        }
        rust::Box<PluginCore> core = core_from_blob(mOp.op,
            rust::Slice<uint8_t const>(serialLength ? static_cast<uint8_t const*>(serialData) : nullptr, serialLength));
        return new PluginV2(mOp, std::move(core), name ? name : "", mNamespace);
    }
    catch (...)
    {
        logFailure(mOp, name, "deserializePlugin", describeException());
        return nullptr;
    }
}

void CreatorV2::setPluginNamespace(nvinfer1::AsciiChar const* ns) noexcept
{
    try
    {
        mNamespace = ns ? ns : "";
    }
    catch (...)
    {
        logFailure(mOp, "", "setPluginNamespace", describeException());
    }
}

nvinfer1::AsciiChar const* CreatorV2::getPluginNamespace() const noexcept
{
    return mNamespace.c_str();
}

} // namespace s6

#endif // S6_HAS_V2
