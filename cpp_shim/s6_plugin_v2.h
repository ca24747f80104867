// The IPluginV2DynamicExt plugin and its IPluginCreator: the interface of TensorRT 8.5/8.6
// (JetPack 5), also compiled into 10.x builds behind getPluginCreators (see S6_HAS_V2 in
// s6_common.h). One class for both ops, the op a parameter (OpInfo), as in s6_plugin_v3.h.
#pragma once

#include "s6plugin/cpp_shim/s6_common.h"

#if S6_HAS_V2

#include <string>
#include <vector>

namespace s6 {

class PluginV2 final : public nvinfer1::IPluginV2DynamicExt {
public:
    PluginV2(OpInfo const& op, rust::Box<PluginCore> core, std::string layer, std::string ns);
    ~PluginV2() override = default;

    // IPluginV2
    nvinfer1::AsciiChar const* getPluginType() const noexcept override;
    nvinfer1::AsciiChar const* getPluginVersion() const noexcept override;
    int32_t getNbOutputs() const noexcept override;
    int32_t initialize() noexcept override;
    void terminate() noexcept override;
    size_t getSerializationSize() const noexcept override;
    void serialize(void* buffer) const noexcept override;
    void destroy() noexcept override;
    void setPluginNamespace(nvinfer1::AsciiChar const* ns) noexcept override;
    nvinfer1::AsciiChar const* getPluginNamespace() const noexcept override;

    // IPluginV2Ext
    nvinfer1::DataType getOutputDataType(
        int32_t index, nvinfer1::DataType const* inputTypes, int32_t nbInputs) const noexcept override;

    // IPluginV2DynamicExt
    nvinfer1::IPluginV2DynamicExt* clone() const noexcept override;
    nvinfer1::DimsExprs getOutputDimensions(int32_t outputIndex, nvinfer1::DimsExprs const* inputs,
        int32_t nbInputs, nvinfer1::IExprBuilder& exprBuilder) noexcept override;
    bool supportsFormatCombination(int32_t pos, nvinfer1::PluginTensorDesc const* inOut, int32_t nbInputs,
        int32_t nbOutputs) noexcept override;
    void configurePlugin(nvinfer1::DynamicPluginTensorDesc const* in, int32_t nbInputs,
        nvinfer1::DynamicPluginTensorDesc const* out, int32_t nbOutputs) noexcept override;
    size_t getWorkspaceSize(nvinfer1::PluginTensorDesc const* inputs, int32_t nbInputs,
        nvinfer1::PluginTensorDesc const* outputs, int32_t nbOutputs) const noexcept override;
    int32_t enqueue(nvinfer1::PluginTensorDesc const* inputDesc, nvinfer1::PluginTensorDesc const* outputDesc,
        void const* const* inputs, void* const* outputs, void* workspace, cudaStream_t stream) noexcept override;

private:
    void fail(char const* method, char const* what) const noexcept;

    OpInfo const& mOp;
    rust::Box<PluginCore> mCore;
    std::string mLayer;
    std::string mNamespace;
};

class CreatorV2 final : public nvinfer1::IPluginCreator {
public:
    explicit CreatorV2(OpInfo const& op);
    ~CreatorV2() override = default;

    nvinfer1::AsciiChar const* getPluginName() const noexcept override;
    nvinfer1::AsciiChar const* getPluginVersion() const noexcept override;
    nvinfer1::PluginFieldCollection const* getFieldNames() noexcept override;
    nvinfer1::IPluginV2* createPlugin(
        nvinfer1::AsciiChar const* name, nvinfer1::PluginFieldCollection const* fc) noexcept override;
    nvinfer1::IPluginV2* deserializePlugin(
        nvinfer1::AsciiChar const* name, void const* serialData, size_t serialLength) noexcept override;
    void setPluginNamespace(nvinfer1::AsciiChar const* ns) noexcept override;
    nvinfer1::AsciiChar const* getPluginNamespace() const noexcept override;

private:
    OpInfo const& mOp;
    FieldList mFieldNames;
    std::string mNamespace;
};

// The process-wide V2 creator of `op` (never destroyed: registries may hold it past our static
// destructors), or nullptr if it could not be made.
inline CreatorV2* creatorV2(OpCode op) noexcept
{
    return processCreator<CreatorV2>(op);
}

} // namespace s6

#endif // S6_HAS_V2
