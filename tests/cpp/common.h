// Shared by the TensorRT-role test programs: a recording logger, a logger finder, checks.
#pragma once

#include <NvInferRuntime.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <memory>
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

using nvinfer1::DimensionOperation;
using nvinfer1::IDimensionExpr;
using nvinfer1::IExprBuilder;
namespace apiv = nvinfer1::apiv;

// An IExprBuilder of our own, for getOutputShapes / getOutputDimensions: symbolic (named) or
// constant dimension expressions.
class Expr;

class ExprImpl : public apiv::VDimensionExpr {
public:
    explicit ExprImpl(Expr const* owner)
        : mOwner(owner)
    {
    }
    bool isConstant() const override;
    int64_t getConstantValue() const override;
    bool isSizeTensor() const override
    {
        return false;
    }

private:
    Expr const* mOwner;
};

class Expr : public IDimensionExpr {
public:
    Expr(std::string name, bool constant, int64_t value)
        : name(std::move(name))
        , constant(constant)
        , value(value)
        , mImplObj(this)
    {
        mImpl = &mImplObj;
    }
    ~Expr() override = default;
    std::string name;
    bool constant;
    int64_t value;

private:
    ExprImpl mImplObj;
};

inline bool ExprImpl::isConstant() const
{
    return mOwner->constant;
}
inline int64_t ExprImpl::getConstantValue() const
{
    return mOwner->constant ? mOwner->value : -1;
}

class ExprBuilderImpl : public apiv::VExprBuilder {
public:
    IDimensionExpr const* constant(int64_t value) override
    {
        return make(std::to_string(value), true, value);
    }
    IDimensionExpr const* operation(DimensionOperation op, IDimensionExpr const& a, IDimensionExpr const& b) override
    {
        auto const& x = static_cast<Expr const&>(a);
        auto const& y = static_cast<Expr const&>(b);
        ++operations;
        if (x.constant && y.constant)
        {
            int64_t v = 0;
            switch (op)
            {
            case DimensionOperation::kSUM: v = x.value + y.value; break;
            case DimensionOperation::kPROD: v = x.value * y.value; break;
            case DimensionOperation::kMAX: v = std::max(x.value, y.value); break;
            case DimensionOperation::kMIN: v = std::min(x.value, y.value); break;
            case DimensionOperation::kSUB: v = x.value - y.value; break;
            case DimensionOperation::kEQUAL: v = x.value == y.value; break;
            case DimensionOperation::kLESS: v = x.value < y.value; break;
            case DimensionOperation::kFLOOR_DIV: v = x.value / y.value; break;
            case DimensionOperation::kCEIL_DIV: v = (x.value + y.value - 1) / y.value; break;
            }
            return make(std::to_string(v), true, v);
        }
        return make("(" + x.name + " op" + std::to_string(static_cast<int>(op)) + " " + y.name + ")", false, -1);
    }
    IDimensionExpr const* declareSizeTensor(int32_t, IDimensionExpr const&, IDimensionExpr const&) override
    {
        return nullptr;
    }
    Expr const* make(std::string name, bool constant, int64_t value)
    {
        mExprs.emplace_back(new Expr(std::move(name), constant, value));
        return mExprs.back().get();
    }
    int operations = 0;

private:
    std::vector<std::unique_ptr<Expr>> mExprs;
};

class ExprBuilder : public IExprBuilder {
public:
    ExprBuilder()
    {
        mImpl = &impl;
    }
    ~ExprBuilder() override = default;
    ExprBuilderImpl impl;
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
