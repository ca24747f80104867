// Shared by the TensorRT-role test programs: a recording logger, a logger finder, checks.
#pragma once

#include <NvInferRuntime.h>

#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <string>
#include <vector>

namespace s6test {

// Records every message; prints warnings and errors.
class RecordingLogger : public nvinfer1::ILogger {
public:
    void log(Severity severity, nvinfer1::AsciiChar const* msg) noexcept override
    {
        std::lock_guard<std::mutex> lock(mMutex);
        mMessages.emplace_back(msg ? msg : "");
        if (severity <= Severity::kWARNING)
        {
            std::printf("  [trt log %d] %s\n", static_cast<int>(severity), msg ? msg : "");
        }
    }
    // True if a message since `from` contains every needle.
    bool saw(size_t from, std::vector<std::string> const& needles)
    {
        std::lock_guard<std::mutex> lock(mMutex);
        for (size_t i = from; i < mMessages.size(); ++i)
        {
            bool all = true;
            for (auto const& n : needles)
            {
                all = all && mMessages[i].find(n) != std::string::npos;
            }
            if (all)
            {
                return true;
            }
        }
        return false;
    }
    size_t count()
    {
        std::lock_guard<std::mutex> lock(mMutex);
        return mMessages.size();
    }

private:
    std::mutex mMutex;
    std::vector<std::string> mMessages;
};

class Finder : public nvinfer1::ILoggerFinder {
public:
    explicit Finder(nvinfer1::ILogger* l)
        : mLogger(l)
    {
    }
    nvinfer1::ILogger* findLogger() override
    {
        return mLogger;
    }

private:
    nvinfer1::ILogger* mLogger;
};

inline int& failures()
{
    static int n = 0;
    return n;
}

#define S6_CHECK(cond, ...)                                                                                            \
    do                                                                                                                 \
    {                                                                                                                  \
        if (cond)                                                                                                      \
        {                                                                                                              \
            std::printf("ok   %s\n", #cond);                                                                           \
        }                                                                                                              \
        else                                                                                                           \
        {                                                                                                              \
            std::printf("FAIL %s (%s:%d) ", #cond, __FILE__, __LINE__);                                                \
            std::printf(__VA_ARGS__);                                                                                  \
            std::printf("\n");                                                                                         \
            ++s6test::failures();                                                                                      \
        }                                                                                                              \
    } while (0)

} // namespace s6test
