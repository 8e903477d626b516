#include "support/test_support.hpp"

#include <cstdlib>
#include <fstream>
#include <sstream>
#include <stdexcept>

namespace omnitak::test {

std::optional<std::filesystem::path> corpus_dir()
{
    std::filesystem::path dir = OMNITAK_TEST_CORPUS_DIR;
    if (const char* overridden = std::getenv("OMNITAK_COT_CORPUS")) dir = overridden;

    std::error_code ec;
    if (std::filesystem::is_directory(dir, ec)) return dir;
    return std::nullopt;
}

std::filesystem::path fixtures_dir()
{
    return OMNITAK_TEST_FIXTURES_DIR;
}

std::string read_file(const std::filesystem::path& path)
{
    std::ifstream in(path, std::ios::binary);
    if (!in) throw std::runtime_error("cannot read " + path.string());
    std::ostringstream bytes;
    bytes << in.rdbuf();
    return std::move(bytes).str();
}

std::optional<double> metric_sample(const std::string& text, const std::string& series)
{
    std::istringstream lines(text);
    std::string line;
    while (std::getline(lines, line)) {
        if (line.size() > series.size() && line.compare(0, series.size(), series) == 0 &&
            line[series.size()] == ' ') {
            return std::stod(line.substr(series.size() + 1));
        }
    }
    return std::nullopt;
}

}  // namespace omnitak::test
