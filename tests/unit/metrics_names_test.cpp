// The metric families built from the components' stats without any traffic: the batch-size
// histogram has its buckets, and every parse-error reason has its named series.
#include <gtest/gtest.h>

#include <chrono>
#include <optional>
#include <sstream>
#include <string>
#include <system_error>

#include "omnitak/pool/system.hpp"
#include "support/test_support.hpp"

namespace {

using namespace std::chrono_literals;
using omnitak::test::metric_sample;

omnitak::system_params quiet()
{
    omnitak::system_params p;
    p.threads = 1;
    p.shutdown_timeout = 1s;
    return p;
}

TEST(MetricsNames, DistributorBatchSizeHistogramHasTheDistributorsBuckets)
{
    omnitak::system sys(quiet());
    const std::string text = sys.metrics().text();
    ASSERT_NE(text.find("# TYPE distributor_batch_size histogram\n"), std::string::npos) << text;

    std::size_t bounds = 0;
    for (const auto bound : omnitak::distributor_batch_size_bounds) {
        const std::string series =
            "distributor_batch_size_bucket{le=\"" + std::to_string(bound) + "\"}";
        EXPECT_EQ(metric_sample(text, series), 0) << series << "\n" << text;
        ++bounds;
    }
    EXPECT_GE(bounds, 10u);
    EXPECT_EQ(metric_sample(text, "distributor_batch_size_bucket{le=\"+Inf\"}"), 0);
    EXPECT_EQ(metric_sample(text, "distributor_batch_size_count"), 0);
}

TEST(MetricsNames, ParseErrorReasonSlotsAreNamedByTheirErrorCodes)
{
    for (std::size_t i = 0; i < omnitak::parse_error_reasons.size(); ++i) {
        EXPECT_EQ(omnitak::parse_error_reason_name(i),
                  omnitak::to_string(omnitak::parse_error_reasons[i]));
        EXPECT_EQ(omnitak::parse_error_index(make_error_code(omnitak::parse_error_reasons[i])), i);
    }
    const std::size_t unknown = omnitak::parse_error_reason_count - 1;
    EXPECT_EQ(omnitak::parse_error_reason_name(unknown), "unknown");
    EXPECT_EQ(omnitak::parse_error_reason_name(unknown + 5), "unknown");
    EXPECT_EQ(omnitak::parse_error_index(make_error_code(omnitak::errc::queue_full)), unknown);
    EXPECT_EQ(omnitak::parse_error_index(make_error_code(omnitak::errc::bytes_skipped)), unknown);
    EXPECT_EQ(omnitak::parse_error_index(std::make_error_code(std::errc::io_error)), unknown);

    // Each slot is one series of pool_parse_errors_total, named as above.
    omnitak::system sys(quiet());
    const std::string text = sys.metrics().text();
    for (std::size_t i = 0; i < omnitak::parse_error_reason_count; ++i) {
        const std::string series = "pool_parse_errors_total{reason=\"" +
                                   std::string(omnitak::parse_error_reason_name(i)) + "\"}";
        EXPECT_EQ(metric_sample(text, series), 0) << series;
    }
    EXPECT_EQ(metric_sample(text, "pool_framer_bytes_skipped_total"), 0);
}

}  // namespace
