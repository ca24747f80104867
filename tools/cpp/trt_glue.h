/* C interface of trt_glue.cpp: the few TensorRT calls s6-engine makes, callable from Rust.
 *
 * Nothing here links libnvinfer: every TensorRT entry point (createInferBuilder_INTERNAL, ...)
 * comes in as a function pointer that the Rust side resolved with libloading. Every function is
 * noexcept on the C++ side and reports failure by return value plus a message in `err`.
 *
 * trt_glue.cpp is compiled once per TensorRT ABI linked into s6-engine (TensorRT, TensorRT-RTX):
 * S6_GLUE_BACKEND_RTX picks the RTX names (s6_glue_rtx_*), else s6_glue_trt_*. The types below
 * are plain C and shared by both. */
#ifndef S6_TRT_GLUE_H
#define S6_TRT_GLUE_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#ifdef S6_GLUE_BACKEND_RTX
#define S6_GLUE(name) s6_glue_rtx_##name
#else
#define S6_GLUE(name) s6_glue_trt_##name
#endif

/* TensorRT's log severities (kINTERNAL_ERROR = 0 ... kVERBOSE = 4). */
typedef void (*s6_log_fn)(void* user, int32_t severity, const char* msg);
/* kind 0: phase start (n = steps), 1: step complete (n = step), 2: phase finish. */
typedef void (*s6_progress_fn)(void* user, int32_t kind, const char* phase, const char* parent, int32_t n);
/* One layer of the parsed network: kind 0 any layer, 1 an IPluginV2 layer, 2 an IPluginV3 layer;
 * plugin: the plugin's type name (NULL for kind 0); dtype: TensorRT DataType of its first output
 * (-1 if none). Strings are valid during the call only. */
typedef void (*s6_layer_fn)(
    void* user, int32_t index, int32_t kind, const char* name, const char* plugin, int32_t dtype);

/* Memory owned by TensorRT (IHostMemory) or by the glue; free with S6_GLUE(blob_free). */
typedef struct S6Blob {
    void* handle;
    const void* data;
    size_t size;
} S6Blob;

typedef struct S6ProfileInput {
    const char* name;
    int32_t rank;
    const int64_t* min;
    const int64_t* opt;
    const int64_t* max;
} S6ProfileInput;

enum { S6_PRECISION_FP32 = 0, S6_PRECISION_FP16 = 1, S6_PRECISION_BF16 = 2, S6_PRECISION_STRONG = 3 };

typedef struct S6BuildParams {
    void* create_builder; /* createInferBuilder_INTERNAL */
    void* create_parser;  /* createNvOnnxParser_INTERNAL */
    const char* onnx_path;
    const S6ProfileInput* inputs;
    int32_t n_inputs;
    int32_t precision;        /* S6_PRECISION_* */
    uint64_t workspace_bytes; /* 0: TensorRT's default */
    const void* timing_cache; /* serialized cache to start from, or NULL */
    size_t timing_cache_size;
    const int32_t* compute_capabilities; /* TensorRT-RTX: SM numbers (75, 86, ...) to build for */
    int32_t n_compute_capabilities;      /* 0: the backend's default */
    s6_log_fn log;
    s6_progress_fn progress; /* may be NULL */
    s6_layer_fn layer;       /* may be NULL; called for every layer after parsing */
    void* user;
} S6BuildParams;

/* NV_TENSORRT_VERSION of the headers this file was compiled against. */
int32_t S6_GLUE(header_version)(void);
/* 1 if compiled against TensorRT-RTX headers, else 0. */
int32_t S6_GLUE(is_rtx)(void);
/* 1 if NvOnnxParser.h was found (engine building possible), else 0. */
int32_t S6_GLUE(has_onnx_parser)(void);

/* 1 if the registry knows creator name/version/namespace, 0 if not, -1 on error. */
int32_t S6_GLUE(has_creator)(void* get_plugin_registry, const char* name, const char* version, const char* ns);
/* Loads a plugin library through IPluginRegistry::loadLibrary (TensorRT >= 8.6); 0 on success. */
int32_t S6_GLUE(load_plugin_library)(void* get_plugin_registry, const char* path, char* err, size_t err_len);

/* Parses the ONNX, builds, serializes. On success (0) fills `engine` and, if a timing cache was
 * produced, `timing_cache`. */
int32_t S6_GLUE(build)(const S6BuildParams* p, S6Blob* engine, S6Blob* timing_cache, char* err, size_t err_len);
void S6_GLUE(blob_free)(S6Blob* blob);

/* ---- running an engine ---- */
typedef struct S6Runner S6Runner;
S6Runner* S6_GLUE(runner_new)(void* create_runtime, const void* engine, size_t size, s6_log_fn log, void* user,
    char* err, size_t err_len);
void S6_GLUE(runner_free)(S6Runner* r);
int32_t S6_GLUE(runner_num_io)(const S6Runner* r);
/* I/O tensor i: name (valid while r lives), 1 if input, TensorRT DataType value, engine shape
 * (-1 = dynamic); dims has room for 8. Returns 0 on success. */
int32_t S6_GLUE(runner_io)(const S6Runner* r, int32_t i, const char** name, int32_t* is_input, int32_t* dtype,
    int32_t* rank, int64_t* dims);
int32_t S6_GLUE(runner_set_input_shape)(S6Runner* r, const char* name, int32_t rank, const int64_t* dims);
/* Shape of a tensor in the execution context (outputs: after all input shapes are set). */
int32_t S6_GLUE(runner_shape)(const S6Runner* r, const char* name, int32_t* rank, int64_t* dims);
int32_t S6_GLUE(runner_set_address)(S6Runner* r, const char* name, void* ptr);
int32_t S6_GLUE(runner_enqueue)(S6Runner* r, void* stream);

#ifdef __cplusplus
}
#endif
#endif
