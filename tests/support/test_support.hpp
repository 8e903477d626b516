// Helpers shared by the test suite.
#pragma once

#include <filesystem>
#include <optional>
#include <string>

namespace omnitak::test {

/// The real-world CoT corpus folder, or nullopt when it is not present on this machine.
/// OMNITAK_COT_CORPUS (environment) overrides the path configured at build time.
std::optional<std::filesystem::path> corpus_dir();

/// Folder of the project's own fixtures (tests/fixtures).
std::filesystem::path fixtures_dir();

/// Whole file as bytes; throws std::runtime_error naming the file when it cannot be read.
std::string read_file(const std::filesystem::path& path);

/// In Prometheus text exposition `text`, the value of the first sample whose name and labels
/// are exactly `series` (e.g. `pool_links{state="connected"}`), or nullopt.
std::optional<double> metric_sample(const std::string& text, const std::string& series);

}  // namespace omnitak::test
