// What the two plugin interfaces share: the TensorRT version macros, logging that cannot abort
// the host, exception text, and the conversions between TensorRT's structs and the bridge's.
//
// TensorRT's plugin ABI is C++ vtables, so the classes in s6_plugin_v2/_v3 exist; each method
// converts TensorRT's structs to the bridge's, calls Rust (plugin/trt/core.rs), and turns an error
// into a log line plus TensorRT's way of failing (nullptr, non-zero status, false). Nothing throws
// out of a method: all are noexcept and catch everything.
#pragma once

#include <NvInferRuntime.h>
#include <NvInferVersion.h>

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "rust/cxx.h"
#include "s6plugin/plugin/trt/ffi.rs.h"

#if defined(TRT_MAJOR_RTX)
#define S6_TRT_RTX 1
#else
#define S6_TRT_RTX 0
#endif

#if !S6_TRT_RTX && (NV_TENSORRT_MAJOR < 8 || (NV_TENSORRT_MAJOR == 8 && NV_TENSORRT_MINOR < 5))
#error "s6plugin needs TensorRT 8.5 or newer headers (or TensorRT-RTX)"
#endif

// Which interfaces this build implements (docs/plugin.md, "Which TensorRT gets which interface"):
// IPluginV3 wherever it exists (TensorRT >= 10, TensorRT-RTX); IPluginV2DynamicExt where V3 does
// not exist (8.5/8.6) and, in 10.x builds only, behind getPluginCreators for hosts and harnesses
// that ask for V2. TensorRT 11 and TensorRT-RTX build V3 alone (V2 is gone or refused there).
#define S6_HAS_V3 (S6_TRT_RTX || NV_TENSORRT_MAJOR >= 10)
#define S6_HAS_V2 (!S6_TRT_RTX && NV_TENSORRT_MAJOR <= 10)

namespace s6 {

constexpr int32_t kMaxTensors = 16; // 10 inputs + 2 outputs at most (S6ScanHeads)

// The ops this library serves, in the order getCreators / getPluginCreators list their creators.
constexpr OpCode kOps[] = {OpCode::Scan, OpCode::Heads};
constexpr int32_t kNbOps = 2;

// An op's TensorRT identity, read once from its Rust contract (plugin/trt/op.rs): process-wide and
// never destroyed, since creators and plugins point at it.
struct OpInfo {
    OpCode op;
    std::string name;    // plugin name = ONNX op_type ("S6Scan", "S6ScanHeads")
    std::string version; // plugin version ("1")
};
// nullptr (logged) if it could not be made.
OpInfo const* opInfo(OpCode op) noexcept;

using Severity = nvinfer1::ILogger::Severity;

// Logs through the logger TensorRT supplies (its ILoggerFinder, else the getLogger() of the
// TensorRT that statically registered us), after checking that the object can be called: a
// stale, half-destroyed or foreign logger goes to stderr instead (warnings and errors only).
void log(Severity severity, std::string const& message) noexcept;
// "<op> plugin '<layer>' <method>: <what>" at kERROR.
void logFailure(OpInfo const& op, char const* layer, char const* method, std::string const& what) noexcept;
// The text of the exception being handled (call inside a catch block only).
std::string describeException() noexcept;

void setLoggerFinder(void* finder) noexcept;
void setGetLogger(void* getLogger) noexcept;

TensorDesc toDesc(nvinfer1::PluginTensorDesc const& d) noexcept;
DynDesc toDynDesc(nvinfer1::DynamicPluginTensorDesc const& d) noexcept;
// A runtime descriptor as a profile of one shape (min = max = the shape).
DynDesc toFixedDynDesc(nvinfer1::PluginTensorDesc const& d) noexcept;
bool countsOk(int32_t nbInputs, int32_t nbOutputs) noexcept;

// An op's fields as one PluginFieldCollection of kINT32 values: what the ONNX parser passes,
// what an IPluginV3 engine stores, and (values unused) what both creators' getFieldNames list.
// Owns the names and values it points at, so it is not copyable.
class FieldList {
public:
    explicit FieldList(OpCode op);
    FieldList(FieldList const&) = delete;
    FieldList& operator=(FieldList const&) = delete;
    void setValues(rust::Vec<int32_t> const& values) noexcept;
    nvinfer1::PluginFieldCollection const* collection() const noexcept
    {
        return &mCollection;
    }

private:
    std::vector<std::string> mNames;
    std::vector<int32_t> mValues;
    std::vector<nvinfer1::PluginField> mFields;
    nvinfer1::PluginFieldCollection mCollection{};
};

// The plugin core of `op` for the fields TensorRT (or its ONNX parser) passes; throws rust::Error
// with the reason (the callers catch and log it).
rust::Box<PluginCore> coreFromFields(OpInfo const& op, char const* layer, nvinfer1::PluginFieldCollection const* fc);

// The process-wide creator of `op` of one interface (never destroyed: registries may hold it
// past our static destructors), or nullptr (logged) if it could not be made. `Creator` is
// constructed from the op's OpInfo.
template <typename Creator>
Creator* processCreator(OpCode op) noexcept
{
    try
    {
        auto make = [](OpCode o) -> Creator* {
            OpInfo const* info = opInfo(o);
            return info != nullptr ? new Creator(*info) : nullptr;
        };
        static Creator* const scan = make(OpCode::Scan);
        static Creator* const heads = make(OpCode::Heads);
        switch (op)
        {
        case OpCode::Scan: return scan;
        case OpCode::Heads: return heads;
        }
        return nullptr;
    }
    catch (...)
    {
        log(Severity::kERROR, "s6plugin: could not create a plugin creator: " + describeException());
        return nullptr;
    }
}

// Output `index`'s dimensions as TensorRT expressions: each is one of the inputs' (Rust says
// which), so no IExprBuilder arithmetic is needed. Throws on a bad reference.
nvinfer1::DimsExprs outputDims(PluginCore const& core, int32_t index, nvinfer1::DimsExprs const* inputs,
    int32_t nbInputs);

// Both interfaces' enqueue: validates, then launches on TensorRT's stream. Throws on error.
void enqueueCore(PluginCore const& core, nvinfer1::PluginTensorDesc const* inputDesc,
    nvinfer1::PluginTensorDesc const* outputDesc, void const* const* inputs, void* const* outputs, void* workspace,
    cudaStream_t stream);

} // namespace s6
