// NOT TensorRT's header. A minimal stand-in for the few ONNX-parser declarations trt_glue.cpp
// uses, so that tools/tests/engine_glue_syntax.rs can syntax-check the engine-build path against
// the real NvInfer.h where the real NvOnnxParser.h is not installed (CI's headers come from a
// wheel without it). Never used to build s6-engine: tools/build.rs does not look here, and a real
// NvOnnxParser.h found earlier on the include path wins.
#pragma once
#include <NvInfer.h>

#define NV_ONNX_PARSER_VERSION 0

namespace nvonnxparser
{
class IParserError
{
public:
    virtual ~IParserError() = default;
    virtual char const* desc() const = 0;
    virtual int node() const = 0;
};

class IParser
{
public:
    virtual ~IParser() noexcept = default;
    virtual bool parseFromFile(char const* path, int verbosity) noexcept = 0;
    virtual int getNbErrors() const noexcept = 0;
    virtual IParserError const* getError(int index) const noexcept = 0;
};
} // namespace nvonnxparser
