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

}  // namespace omnitak::test
