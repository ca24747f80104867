// Method bodies of the V3 plugin and creator (see s6_plugin_v3.h). Every decision is the Rust
// core's (plugin/trt/core.rs), shared with the V2 plugin and between the ops.
#include "s6plugin/cpp_shim/s6_plugin_v3.h"

#if S6_HAS_V3

#include <stdexcept>

namespace s6 {

// ---------------------------------------------------------------------------------------------
// PluginV3

PluginV3::PluginV3(OpInfo const& op, rust::Box<PluginCore> core, std::string layer, std::string ns)
    : mOp(op)
    , mCore(std::move(core))
    , mLayer(std::move(layer))
    , mNamespace(std::move(ns))
    , mSerialized(op.op)
{
}

void PluginV3::fail(char const* method, char const* what) const noexcept
{
    logFailure(mOp, mLayer.c_str(), method, what);
}

nvinfer1::IPluginCapability* PluginV3::getCapabilityInterface(nvinfer1::PluginCapabilityType type) noexcept
{
    switch (type)
    {
    case nvinfer1::PluginCapabilityType::kCORE: return static_cast<nvinfer1::IPluginV3OneCore*>(this);
    case nvinfer1::PluginCapabilityType::kBUILD: return static_cast<nvinfer1::IPluginV3OneBuild*>(this);
    case nvinfer1::PluginCapabilityType::kRUNTIME: return static_cast<nvinfer1::IPluginV3OneRuntime*>(this);
    }
    fail("getCapabilityInterface", "unknown capability type");
    return nullptr;
}

nvinfer1::IPluginV3* PluginV3::clone() noexcept
{
    try
    {
        return new PluginV3(mOp, mCore->clone_core(), mLayer, mNamespace);
    }
    catch (...)
    {
        fail("clone", describeException().c_str());
        return nullptr;
    }
}

nvinfer1::AsciiChar const* PluginV3::getPluginName() const noexcept
{
    return mOp.name.c_str();
}

nvinfer1::AsciiChar const* PluginV3::getPluginVersion() const noexcept
{
    return mOp.version.c_str();
}

nvinfer1::AsciiChar const* PluginV3::getPluginNamespace() const noexcept
{
    return mNamespace.c_str();
}

int32_t PluginV3::configurePlugin(nvinfer1::DynamicPluginTensorDesc const* in, int32_t nbInputs,
    nvinfer1::DynamicPluginTensorDesc const* out, int32_t nbOutputs) noexcept
{
    try
    {
        if (in == nullptr || out == nullptr || !countsOk(nbInputs, nbOutputs))
        {
            fail("configurePlugin", "bad tensor arrays");
            return 1;
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
        return 0;
    }
    catch (...)
    {
        fail("configurePlugin", describeException().c_str());
        return 1;
    }
}

int32_t PluginV3::getOutputDataTypes(nvinfer1::DataType* outputTypes, int32_t nbOutputs,
    nvinfer1::DataType const* inputTypes, int32_t nbInputs) const noexcept
{
    try
    {
        if (outputTypes == nullptr || inputTypes == nullptr || !countsOk(nbInputs, nbOutputs)
            || nbOutputs != mCore->num_outputs())
        {
            fail("getOutputDataTypes", "bad type arrays");
            return 1;
        }
        std::array<int32_t, kMaxTensors> types{};
        for (int32_t i = 0; i < nbInputs; ++i)
        {
            types[i] = static_cast<int32_t>(inputTypes[i]);
        }
        for (int32_t o = 0; o < nbOutputs; ++o)
        {
            int32_t const t = mCore->output_dtype(o, rust::Slice<int32_t const>(types.data(), nbInputs));
            outputTypes[o] = static_cast<nvinfer1::DataType>(t);
        }
        return 0;
    }
    catch (...)
    {
        fail("getOutputDataTypes", describeException().c_str());
        return 1;
    }
}

int32_t PluginV3::getOutputShapes(nvinfer1::DimsExprs const* inputs, int32_t nbInputs,
    nvinfer1::DimsExprs const* /*shapeInputs*/, int32_t nbShapeInputs, nvinfer1::DimsExprs* outputs,
    int32_t nbOutputs, nvinfer1::IExprBuilder& /*exprBuilder*/) noexcept
{
    try
    {
        if (outputs == nullptr || nbShapeInputs != 0 || nbOutputs != mCore->num_outputs())
        {
            fail("getOutputShapes", "bad output array (or shape inputs, which this plugin has none of)");
            return 1;
        }
        for (int32_t o = 0; o < nbOutputs; ++o)
        {
            outputs[o] = outputDims(*mCore, o, inputs, nbInputs);
        }
        return 0;
    }
    catch (...)
    {
        fail("getOutputShapes", describeException().c_str());
        return 1;
    }
}

bool PluginV3::supportsFormatCombination(
    int32_t pos, nvinfer1::DynamicPluginTensorDesc const* inOut, int32_t nbInputs, int32_t nbOutputs) noexcept
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
            descs[i] = toDesc(inOut[i].desc);
        }
        return mCore->supports_format(pos, rust::Slice<TensorDesc const>(descs.data(), n), nbInputs, nbOutputs);
    }
    catch (...)
    {
        fail("supportsFormatCombination", describeException().c_str());
        return false;
    }
}

int32_t PluginV3::getNbOutputs() const noexcept
{
    return mCore->num_outputs();
}

size_t PluginV3::getWorkspaceSize(nvinfer1::DynamicPluginTensorDesc const* inputs, int32_t nbInputs,
    nvinfer1::DynamicPluginTensorDesc const* outputs, int32_t nbOutputs) const noexcept
{
    try
    {
        if (inputs == nullptr || outputs == nullptr || !countsOk(nbInputs, nbOutputs))
        {
            fail("getWorkspaceSize", "bad tensor arrays");
            return 0;
        }
        // The workspace is monotone in the sizes (plugin/cuda), so the profile's largest shapes
        // cover every launch the engine can make.
        std::array<TensorDesc, kMaxTensors> ins{};
        std::array<TensorDesc, kMaxTensors> outs{};
        for (int32_t i = 0; i < nbInputs; ++i)
        {
            ins[i] = toDesc(inputs[i].desc);
            for (int32_t k = 0; k < inputs[i].max.nbDims && k < 8; ++k)
            {
                ins[i].dims[k] = inputs[i].max.d[k];
            }
        }
        for (int32_t i = 0; i < nbOutputs; ++i)
        {
            outs[i] = toDesc(outputs[i].desc);
            for (int32_t k = 0; k < outputs[i].max.nbDims && k < 8; ++k)
            {
                outs[i].dims[k] = outputs[i].max.d[k];
            }
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

int32_t PluginV3::onShapeChange(nvinfer1::PluginTensorDesc const* in, int32_t nbInputs,
    nvinfer1::PluginTensorDesc const* out, int32_t nbOutputs) noexcept
{
    try
    {
        if (in == nullptr || out == nullptr || !countsOk(nbInputs, nbOutputs))
        {
            fail("onShapeChange", "bad tensor arrays");
            return 1;
        }
        // The same checks as configurePlugin, on the one shape the context now runs.
        std::array<DynDesc, kMaxTensors> ins{};
        std::array<DynDesc, kMaxTensors> outs{};
        for (int32_t i = 0; i < nbInputs; ++i)
        {
            ins[i] = toFixedDynDesc(in[i]);
        }
        for (int32_t i = 0; i < nbOutputs; ++i)
        {
            outs[i] = toFixedDynDesc(out[i]);
        }
        mCore->configure(rust::Slice<DynDesc const>(ins.data(), nbInputs),
            rust::Slice<DynDesc const>(outs.data(), nbOutputs));
        return 0;
    }
    catch (...)
    {
        fail("onShapeChange", describeException().c_str());
        return 1;
    }
}

int32_t PluginV3::enqueue(nvinfer1::PluginTensorDesc const* inputDesc,
    nvinfer1::PluginTensorDesc const* outputDesc, void const* const* inputs, void* const* outputs, void* workspace,
    cudaStream_t stream) noexcept
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

nvinfer1::IPluginV3* PluginV3::attachToContext(nvinfer1::IPluginResourceContext* /*context*/) noexcept
{
    // No per-context resources: the kernels' module is loaded once per CUDA context by Rust.
    return clone();
}

nvinfer1::PluginFieldCollection const* PluginV3::getFieldsToSerialize() noexcept
{
    try
    {
        mSerialized.setValues(mCore->field_values());
        return mSerialized.collection();
    }
    catch (...)
    {
        fail("getFieldsToSerialize", describeException().c_str());
        return nullptr;
    }
}

// ---------------------------------------------------------------------------------------------
// CreatorV3

CreatorV3::CreatorV3(OpInfo const& op)
    : mOp(op)
    , mFieldNames(op.op)
{
}

nvinfer1::IPluginV3* CreatorV3::createPlugin(nvinfer1::AsciiChar const* name,
    nvinfer1::PluginFieldCollection const* fc, nvinfer1::TensorRTPhase /*phase*/) noexcept
{
    // Build and runtime phases take the same fields (an engine stores getFieldsToSerialize's),
    // refused as strictly either way.
    try
    {
        return new PluginV3(mOp, coreFromFields(mOp, name, fc), name ? name : "", mNamespace);
    }
    catch (...)
    {
        logFailure(mOp, name, "createPlugin", describeException());
        return nullptr;
    }
}

nvinfer1::PluginFieldCollection const* CreatorV3::getFieldNames() noexcept
{
    return mFieldNames.collection();
}

nvinfer1::AsciiChar const* CreatorV3::getPluginName() const noexcept
{
    return mOp.name.c_str();
}

nvinfer1::AsciiChar const* CreatorV3::getPluginVersion() const noexcept
{
    return mOp.version.c_str();
}

nvinfer1::AsciiChar const* CreatorV3::getPluginNamespace() const noexcept
{
    return mNamespace.c_str();
}

} // namespace s6

#endif // S6_HAS_V3
