// Logging, exception text and struct conversions shared by both plugin interfaces.
#include "s6plugin/cpp_shim/s6_common.h"

#include <dlfcn.h>
#include <sys/mman.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstring>
#include <exception>
#include <stdexcept>
#include <vector>

extern "C" void __cxa_pure_virtual();
extern "C" void __cxa_deleted_virtual();

namespace s6 {
namespace {

using nvinfer1::ILogger;
#if S6_TRT_RTX || NV_TENSORRT_MAJOR > 8 || NV_TENSORRT_MINOR >= 6
using nvinfer1::ILoggerFinder;
#else
// TensorRT 8.5 has no ILoggerFinder (nor loadLibrary, which hands one over); the same shape.
class ILoggerFinder
{
public:
    virtual ILogger* findLogger() = 0;

protected:
    virtual ~ILoggerFinder() = default;
};
#endif
using GetLoggerFn = ILogger* (*) ();

std::atomic<ILoggerFinder*> gLoggerFinder{nullptr};
std::atomic<GetLoggerFn> gGetLogger{nullptr};

// ---- calling a host object only when it can be called ---------------------------------------
//
// TensorRT's finder returns whatever logger its process last registered (getLogger()), which can
// be a logger its owner has already destroyed: a call through it then lands on
// __cxa_pure_virtual and aborts the host ("pure virtual method called"). So before each call we
// check that the object's memory is mapped, that its vtable lies in a loaded module, and that the
// slot we call is a real function (not the pure/deleted-virtual handler).

// Itanium C++ ABI: a pointer to a virtual member function holds the slot's byte offset (+1 on
// x86-64; on ARM the virtual flag is in the adjustment's low bit instead).
template <typename Method>
long vtableSlot(Method m) noexcept
{
    struct Rep
    {
        std::uintptr_t ptr;
        std::ptrdiff_t adj;
    };
    static_assert(sizeof(Method) == sizeof(Rep), "Itanium C++ ABI member-function pointer");
    Rep r{};
    std::memcpy(&r, &m, sizeof r);
#if defined(__aarch64__) || defined(__arm__)
    if ((r.adj & 1) == 0)
    {
        return -1;
    }
    return static_cast<long>(r.ptr / sizeof(void*));
#else
    if ((r.ptr & 1) == 0)
    {
        return -1;
    }
    return static_cast<long>((r.ptr - 1) / sizeof(void*));
#endif
}

bool mapped(void const* p, size_t bytes) noexcept
{
    long const page = sysconf(_SC_PAGESIZE);
    if (page <= 0)
    {
        return false;
    }
    auto const start = reinterpret_cast<std::uintptr_t>(p) & ~(static_cast<std::uintptr_t>(page) - 1);
    auto const end = reinterpret_cast<std::uintptr_t>(p) + bytes;
    size_t const len = end - start;
    std::vector<unsigned char> vec((len + page - 1) / page);
    // mincore fails with ENOMEM on any page that is not mapped.
    return mincore(reinterpret_cast<void*>(start), len, vec.data()) == 0;
}

bool isAbortHandler(void* fn) noexcept
{
    if (fn == reinterpret_cast<void*>(&__cxa_pure_virtual) || fn == reinterpret_cast<void*>(&__cxa_deleted_virtual))
    {
        return true;
    }
    // A library with its own (static) C++ runtime has its own copy of the handlers.
    Dl_info info{};
    if (dladdr(fn, &info) != 0 && info.dli_sname != nullptr && info.dli_saddr == fn)
    {
        return std::strcmp(info.dli_sname, "__cxa_pure_virtual") == 0
            || std::strcmp(info.dli_sname, "__cxa_deleted_virtual") == 0;
    }
    return false;
}

// True if virtual slot `slot` of the polymorphic object at `obj` can be called.
bool callable(void const* obj, long slot) noexcept
{
    constexpr std::uintptr_t kAlign = alignof(void*) - 1;
    if (obj == nullptr || slot < 0 || (reinterpret_cast<std::uintptr_t>(obj) & kAlign) != 0
        || !mapped(obj, sizeof(void*)))
    {
        return false;
    }
    void* const* vtable = *static_cast<void* const* const*>(obj);
    Dl_info info{};
    if (vtable == nullptr || (reinterpret_cast<std::uintptr_t>(vtable) & kAlign) != 0
        || dladdr(vtable, &info) == 0 || !mapped(vtable + slot, sizeof(void*)))
    {
        return false;
    }
    void* const fn = vtable[slot];
    return fn != nullptr && dladdr(fn, &info) != 0 && !isAbortHandler(fn);
}

ILogger* currentLogger() noexcept
{
    ILogger* logger = nullptr;
    try
    {
        ILoggerFinder* finder = gLoggerFinder.load();
        if (finder != nullptr && callable(finder, vtableSlot(&ILoggerFinder::findLogger)))
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
    }
    catch (...)
    {
        logger = nullptr;
    }
    if (logger != nullptr && !callable(logger, vtableSlot(&ILogger::log)))
    {
        return nullptr;
    }
    return logger;
}

} // namespace

void setLoggerFinder(void* finder) noexcept
{
    gLoggerFinder.store(static_cast<ILoggerFinder*>(finder));
}

void setGetLogger(void* getLogger) noexcept
{
    gGetLogger.store(reinterpret_cast<GetLoggerFn>(getLogger));
}

void log(Severity severity, std::string const& message) noexcept
{
    try
    {
        if (ILogger* logger = currentLogger())
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

void logFailure(OpInfo const& op, char const* layer, char const* method, std::string const& what) noexcept
{
    try
    {
        log(Severity::kERROR, op.name + " plugin '" + (layer ? layer : "") + "' " + method + ": " + what);
    }
    catch (...)
    {
    }
}

OpInfo const* opInfo(OpCode op) noexcept
{
    try
    {
        auto make = [](OpCode o) {
            return new OpInfo{o, std::string(op_name(o)), std::string(op_version(o))};
        };
        static OpInfo const* const scan = make(OpCode::Scan);
        static OpInfo const* const heads = make(OpCode::Heads);
        switch (op)
        {
        case OpCode::Scan: return scan;
        case OpCode::Heads: return heads;
        }
        return nullptr;
    }
    catch (...)
    {
        log(Severity::kERROR, "s6plugin: op names: " + describeException());
        return nullptr;
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

namespace {
std::array<int64_t, 8> toArray(nvinfer1::Dims const& d) noexcept
{
    std::array<int64_t, 8> a{};
    for (int32_t i = 0; i < d.nbDims && i < 8; ++i)
    {
        a[i] = static_cast<int64_t>(d.d[i]);
    }
    return a;
}
} // namespace

DynDesc toDynDesc(nvinfer1::DynamicPluginTensorDesc const& d) noexcept
{
    DynDesc t{};
    t.desc = toDesc(d.desc);
    t.min = toArray(d.min);
    t.max = toArray(d.max);
    return t;
}

DynDesc toFixedDynDesc(nvinfer1::PluginTensorDesc const& d) noexcept
{
    DynDesc t{};
    t.desc = toDesc(d);
    t.min = toArray(d.dims);
    t.max = t.min;
    return t;
}

bool countsOk(int32_t nbInputs, int32_t nbOutputs) noexcept
{
    return nbInputs >= 0 && nbOutputs >= 0 && nbInputs + nbOutputs <= kMaxTensors;
}

FieldList::FieldList(OpCode op)
{
    for (rust::String const& n : field_names(op))
    {
        mNames.emplace_back(std::string(n));
    }
    mValues.assign(mNames.size(), 0);
    // Every field is one INT (kINT32), as TensorRT's ONNX parser passes INT node attributes.
    for (size_t i = 0; i < mNames.size(); ++i)
    {
        mFields.emplace_back(mNames[i].c_str(), &mValues[i], nvinfer1::PluginFieldType::kINT32, 1);
    }
    mCollection.nbFields = static_cast<int32_t>(mFields.size());
    mCollection.fields = mFields.data();
}

void FieldList::setValues(rust::Vec<int32_t> const& values) noexcept
{
    for (size_t i = 0; i < mValues.size() && i < values.size(); ++i)
    {
        mValues[i] = values[i];
    }
}

rust::Box<PluginCore> coreFromFields(OpInfo const& op, char const* layer, nvinfer1::PluginFieldCollection const* fc)
{
    rust::Box<FieldSet> fields = new_field_set();
    if (fc != nullptr)
    {
        if (fc->nbFields < 0 || (fc->nbFields > 0 && fc->fields == nullptr))
        {
            throw std::runtime_error("bad PluginFieldCollection");
        }
        for (int32_t i = 0; i < fc->nbFields; ++i)
        {
            nvinfer1::PluginField const& f = fc->fields[i];
            char const* name = f.name ? f.name : "";
            fields->add_field(rust::Slice<uint8_t const>(reinterpret_cast<uint8_t const*>(name), std::strlen(name)),
                static_cast<int32_t>(f.type), f.length, static_cast<uint8_t const*>(f.data));
        }
    }
    rust::Box<PluginCore> core = fields->build(op.op);
    log(Severity::kVERBOSE,
        op.name + " plugin '" + (layer ? layer : "") + "' created: " + std::string(core->describe()));
    return core;
}

nvinfer1::DimsExprs outputDims(
    PluginCore const& core, int32_t index, nvinfer1::DimsExprs const* inputs, int32_t nbInputs)
{
    if (inputs == nullptr || !countsOk(nbInputs, 0))
    {
        throw std::runtime_error("bad input array");
    }
    std::array<int32_t, kMaxTensors> ranks{};
    for (int32_t i = 0; i < nbInputs; ++i)
    {
        ranks[i] = inputs[i].nbDims;
    }
    rust::Vec<DimRef> refs = core.output_dims(index, rust::Slice<int32_t const>(ranks.data(), nbInputs));
    if (refs.size() > static_cast<size_t>(nvinfer1::Dims::MAX_DIMS))
    {
        throw std::runtime_error("too many output dimensions");
    }
    nvinfer1::DimsExprs out{};
    int32_t k = 0;
    for (DimRef const& r : refs)
    {
        if (r.input < 0 || r.input >= nbInputs || r.axis < 0 || r.axis >= inputs[r.input].nbDims)
        {
            throw std::runtime_error("dimension reference out of range");
        }
        out.d[k++] = inputs[r.input].d[r.axis];
    }
    out.nbDims = k;
    return out;
}

void enqueueCore(PluginCore const& core, nvinfer1::PluginTensorDesc const* inputDesc,
    nvinfer1::PluginTensorDesc const* outputDesc, void const* const* inputs, void* const* outputs, void* workspace,
    cudaStream_t stream)
{
    int32_t const nbInputs = core.num_inputs();
    int32_t const nbOutputs = core.num_outputs();
    if (inputDesc == nullptr || outputDesc == nullptr || inputs == nullptr || outputs == nullptr
        || !countsOk(nbInputs, nbOutputs))
    {
        throw std::runtime_error("null descriptor or buffer array");
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
    core.enqueue(rust::Slice<TensorDesc const>(ins.data(), nbInputs),
        rust::Slice<TensorDesc const>(outs.data(), nbOutputs), rust::Slice<size_t const>(inPtrs.data(), nbInputs),
        rust::Slice<size_t const>(outPtrs.data(), nbOutputs), reinterpret_cast<size_t>(workspace),
        reinterpret_cast<size_t>(stream));
}

} // namespace s6
