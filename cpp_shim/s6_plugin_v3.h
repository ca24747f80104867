// The IPluginV3 plugin (core, build and runtime capabilities) and its IPluginCreatorV3One: the
// interface of TensorRT >= 10 and TensorRT-RTX, whose ONNX parser imports only this one. One
// class for both ops (S6Scan, S6ScanHeads): the op is a parameter (OpInfo), every decision the
// Rust core's. Engines serialise it through its fields (getFieldsToSerialize → createPlugin at
// kRUNTIME).
#pragma once

#include "s6plugin/cpp_shim/s6_common.h"

#if S6_HAS_V3

#include <string>
#include <vector>

namespace s6 {

class PluginV3 final : public nvinfer1::IPluginV3,
                             public nvinfer1::IPluginV3OneCore,
                             public nvinfer1::IPluginV3OneBuild,
                             public nvinfer1::IPluginV3OneRuntime {
public:
    PluginV3(OpInfo const& op, rust::Box<PluginCore> core, std::string layer, std::string ns);
    ~PluginV3() override = default;

    // IPluginV3
    nvinfer1::IPluginCapability* getCapabilityInterface(nvinfer1::PluginCapabilityType type) noexcept override;
    nvinfer1::IPluginV3* clone() noexcept override;

    // IPluginV3OneCore
    nvinfer1::AsciiChar const* getPluginName() const noexcept override;
    nvinfer1::AsciiChar const* getPluginVersion() const noexcept override;
    nvinfer1::AsciiChar const* getPluginNamespace() const noexcept override;

    // IPluginV3OneBuild
    int32_t configurePlugin(nvinfer1::DynamicPluginTensorDesc const* in, int32_t nbInputs,
        nvinfer1::DynamicPluginTensorDesc const* out, int32_t nbOutputs) noexcept override;
    int32_t getOutputDataTypes(nvinfer1::DataType* outputTypes, int32_t nbOutputs,
        nvinfer1::DataType const* inputTypes, int32_t nbInputs) const noexcept override;
    int32_t getOutputShapes(nvinfer1::DimsExprs const* inputs, int32_t nbInputs,
        nvinfer1::DimsExprs const* shapeInputs, int32_t nbShapeInputs, nvinfer1::DimsExprs* outputs,
        int32_t nbOutputs, nvinfer1::IExprBuilder& exprBuilder) noexcept override;
    bool supportsFormatCombination(int32_t pos, nvinfer1::DynamicPluginTensorDesc const* inOut, int32_t nbInputs,
        int32_t nbOutputs) noexcept override;
    int32_t getNbOutputs() const noexcept override;
    size_t getWorkspaceSize(nvinfer1::DynamicPluginTensorDesc const* inputs, int32_t nbInputs,
        nvinfer1::DynamicPluginTensorDesc const* outputs, int32_t nbOutputs) const noexcept override;

    // IPluginV3OneRuntime
    int32_t onShapeChange(nvinfer1::PluginTensorDesc const* in, int32_t nbInputs,
        nvinfer1::PluginTensorDesc const* out, int32_t nbOutputs) noexcept override;
    int32_t enqueue(nvinfer1::PluginTensorDesc const* inputDesc, nvinfer1::PluginTensorDesc const* outputDesc,
        void const* const* inputs, void* const* outputs, void* workspace, cudaStream_t stream) noexcept override;
    nvinfer1::IPluginV3* attachToContext(nvinfer1::IPluginResourceContext* context) noexcept override;
    nvinfer1::PluginFieldCollection const* getFieldsToSerialize() noexcept override;

private:
    void fail(char const* method, char const* what) const noexcept;

    OpInfo const& mOp;
    rust::Box<PluginCore> mCore;
    std::string mLayer;
    std::string mNamespace;
    FieldList mSerialized;
};

class CreatorV3 final : public nvinfer1::IPluginCreatorV3One {
public:
    explicit CreatorV3(OpInfo const& op);
    ~CreatorV3() override = default;

    nvinfer1::IPluginV3* createPlugin(nvinfer1::AsciiChar const* name, nvinfer1::PluginFieldCollection const* fc,
        nvinfer1::TensorRTPhase phase) noexcept override;
    nvinfer1::PluginFieldCollection const* getFieldNames() noexcept override;
    nvinfer1::AsciiChar const* getPluginName() const noexcept override;
    nvinfer1::AsciiChar const* getPluginVersion() const noexcept override;
    nvinfer1::AsciiChar const* getPluginNamespace() const noexcept override;

private:
    OpInfo const& mOp;
    FieldList mFieldNames;
    std::string mNamespace;
};

// The process-wide V3 creator of `op` (never destroyed), or nullptr if it could not be made.
inline CreatorV3* creatorV3(OpCode op) noexcept
{
    return processCreator<CreatorV3>(op);
}

} // namespace s6

#endif // S6_HAS_V3
