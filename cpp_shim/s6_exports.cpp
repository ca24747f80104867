// Internal entry points behind the library's exports; Rust (plugin/trt/registration.rs) exports
// them under TensorRT's names after checking that the TensorRT calling is the one these headers
// describe. Nothing here is reached in a host of another ABI.
#include "s6plugin/cpp_shim/s6_plugin_v2.h"
#include "s6plugin/cpp_shim/s6_plugin_v3.h"

namespace {
using GetPluginRegistryFn = nvinfer1::IPluginRegistry* (*) ();

// The creators of every op for one interface, as the array TensorRT reads: process-wide, filled
// once; an op whose creator could not be made (logged) is left out.
template <typename Base, typename Creator>
void* const* creatorList(Creator* (*get)(s6::OpCode), int32_t* nbCreators) noexcept
{
    struct List {
        Base* items[s6::kNbOps] = {};
        int32_t n = 0;
    };
    static List const list = [get] {
        List l;
        for (s6::OpCode op : s6::kOps)
        {
            if (Creator* c = get(op))
            {
                l.items[l.n++] = static_cast<Base*>(c);
            }
        }
        return l;
    }();
    if (nbCreators != nullptr)
    {
        *nbCreators = list.n;
    }
    return list.n > 0 ? reinterpret_cast<void* const*>(list.items) : nullptr;
}
} // namespace

extern "C" {

// `v3List` != 0: the IPluginCreatorInterface* array of getCreators (TensorRT >= 10: the V3
// creators); else the IPluginCreator* array of getPluginCreators (the V2 creators, where built).
// Both list every op's creator (S6Scan, S6ScanHeads).
void* const* s6_shim_creators(int32_t v3List, int32_t* nbCreators) noexcept
{
    if (nbCreators != nullptr)
    {
        *nbCreators = 0;
    }
    if (v3List != 0)
    {
#if S6_HAS_V3
        return creatorList<nvinfer1::IPluginCreatorInterface>(&s6::creatorV3, nbCreators);
#else
        return nullptr;
#endif
    }
#if S6_HAS_V2
    return creatorList<nvinfer1::IPluginCreator>(&s6::creatorV2, nbCreators);
#else
    return nullptr;
#endif
}

void s6_shim_set_logger_finder(void* finder) noexcept
{
    s6::setLoggerFinder(finder);
}

// Registers the creators this build hands to its TensorRT (V3 where it exists), one per op, with
// the registry of `getPluginRegistry` (a TensorRT of this ABI, already checked). 1 if every op's
// creator was registered, 0 if any was refused (TensorRT logs why).
int32_t s6_shim_register_static(void* getPluginRegistry, void* getLogger) noexcept
{
    try
    {
        s6::setGetLogger(getLogger);
        auto const getRegistry = reinterpret_cast<GetPluginRegistryFn>(getPluginRegistry);
        nvinfer1::IPluginRegistry* registry = getRegistry ? getRegistry() : nullptr;
        if (registry == nullptr)
        {
            return 0;
        }
        bool ok = true;
        for (s6::OpCode op : s6::kOps)
        {
#if S6_HAS_V3
            s6::CreatorV3* c = s6::creatorV3(op);
#else
            s6::CreatorV2* c = s6::creatorV2(op);
#endif
            ok = c != nullptr && registry->registerCreator(*c, "") && ok;
        }
        return ok ? 1 : 0;
    }
    catch (...)
    {
        s6::log(s6::Severity::kERROR, "s6plugin: static registration failed: " + s6::describeException());
        return 0;
    }
}

// Which interfaces this build implements: bit 0 V2DynamicExt, bit 1 V3.
int32_t s6_shim_interfaces() noexcept
{
    return (S6_HAS_V2 ? 1 : 0) | (S6_HAS_V3 ? 2 : 0);
}

} // extern "C"
