// Internal entry points behind the library's exports; Rust (plugin/trt/registration.rs) exports
// them under TensorRT's names after checking that the TensorRT calling is the one these headers
// describe. Nothing here is reached in a host of another ABI.
#include "s6plugin/cpp_shim/s6_plugin_v2.h"
#include "s6plugin/cpp_shim/s6_plugin_v3.h"

namespace {
using GetPluginRegistryFn = nvinfer1::IPluginRegistry* (*) ();
} // namespace

extern "C" {

// `v3List` != 0: the IPluginCreatorInterface* array of getCreators (TensorRT >= 10: the V3
// creator); else the IPluginCreator* array of getPluginCreators (the V2 creator, where built).
void* const* s6_shim_creators(int32_t v3List, int32_t* nbCreators) noexcept
{
    if (nbCreators != nullptr)
    {
        *nbCreators = 0;
    }
    if (v3List != 0)
    {
#if S6_HAS_V3
        s6::S6ScanCreatorV3* c = s6::creatorV3();
        if (c == nullptr)
        {
            return nullptr;
        }
        static nvinfer1::IPluginCreatorInterface* v3[1] = {static_cast<nvinfer1::IPluginCreatorInterface*>(c)};
        if (nbCreators != nullptr)
        {
            *nbCreators = 1;
        }
        return reinterpret_cast<void* const*>(v3);
#else
        return nullptr;
#endif
    }
#if S6_HAS_V2
    s6::S6ScanCreator* c = s6::creatorV2();
    if (c == nullptr)
    {
        return nullptr;
    }
    static nvinfer1::IPluginCreator* v2[1] = {static_cast<nvinfer1::IPluginCreator*>(c)};
    if (nbCreators != nullptr)
    {
        *nbCreators = 1;
    }
    return reinterpret_cast<void* const*>(v2);
#else
    return nullptr;
#endif
}

void s6_shim_set_logger_finder(void* finder) noexcept
{
    s6::setLoggerFinder(finder);
}

// Registers the creator this build hands to its TensorRT (V3 where it exists) with the registry of
// `getPluginRegistry` (a TensorRT of this ABI, already checked). 1 registered, 0 refused.
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
#if S6_HAS_V3
        s6::S6ScanCreatorV3* c = s6::creatorV3();
        bool const ok = c != nullptr && registry->registerCreator(*c, "");
#else
        s6::S6ScanCreator* c = s6::creatorV2();
        bool const ok = c != nullptr && registry->registerCreator(*c, "");
#endif
        return ok ? 1 : 0;
    }
    catch (...)
    {
        s6::log(s6::Severity::kERROR, "S6Scan: static registration failed: " + s6::describeException());
        return 0;
    }
}

// Which interfaces this build implements: bit 0 V2DynamicExt, bit 1 V3.
int32_t s6_shim_interfaces() noexcept
{
    return (S6_HAS_V2 ? 1 : 0) | (S6_HAS_V3 ? 2 : 0);
}

} // extern "C"
