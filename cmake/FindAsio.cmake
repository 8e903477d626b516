# FindAsio
# --------
# Finds standalone Asio (Debian: libasio-dev), which installs headers only and no CMake
# package configuration.
#
# Imported target:
#   Asio::Asio   header-only interface target; defines ASIO_STANDALONE and links Threads.
#
# Result variables:
#   Asio_FOUND, Asio_INCLUDE_DIR, Asio_VERSION

find_path(Asio_INCLUDE_DIR NAMES asio.hpp asio/version.hpp)

if(Asio_INCLUDE_DIR AND EXISTS "${Asio_INCLUDE_DIR}/asio/version.hpp")
    # ASIO_VERSION is encoded as XXYYZZ: major * 100000 + minor * 100 + patch.
    file(STRINGS "${Asio_INCLUDE_DIR}/asio/version.hpp" _asio_version_line
         REGEX "^#define ASIO_VERSION [0-9]+")
    string(REGEX REPLACE "^#define ASIO_VERSION ([0-9]+).*" "\\1" _asio_version_number
           "${_asio_version_line}")
    math(EXPR _asio_major "${_asio_version_number} / 100000")
    math(EXPR _asio_minor "${_asio_version_number} / 100 % 1000")
    math(EXPR _asio_patch "${_asio_version_number} % 100")
    set(Asio_VERSION "${_asio_major}.${_asio_minor}.${_asio_patch}")
endif()

include(FindPackageHandleStandardArgs)
find_package_handle_standard_args(Asio
    REQUIRED_VARS Asio_INCLUDE_DIR
    VERSION_VAR Asio_VERSION)

if(Asio_FOUND AND NOT TARGET Asio::Asio)
    find_package(Threads REQUIRED)
    add_library(Asio::Asio INTERFACE IMPORTED)
    set_target_properties(Asio::Asio PROPERTIES
        INTERFACE_INCLUDE_DIRECTORIES "${Asio_INCLUDE_DIR}"
        # ASIO_DISABLE_STD_ALIGNED_ALLOC: Asio 1.22 picks aligned_alloc or operator new
        # depending on which standard headers a translation unit included first, so two TUs
        # can allocate and free the same memory differently (AddressSanitizer reports
        # alloc-dealloc-mismatch). Pinning one allocator keeps every TU consistent.
        # Asio 1.22 only enables co_await on clang when <experimental/coroutine> exists, which
        # libstdc++ does not ship; clang 14 supports C++20 coroutines with <coroutine>.
        INTERFACE_COMPILE_DEFINITIONS
            "ASIO_STANDALONE;ASIO_NO_DEPRECATED;ASIO_DISABLE_STD_ALIGNED_ALLOC;$<$<CXX_COMPILER_ID:Clang>:ASIO_HAS_CO_AWAIT=1>"
        INTERFACE_LINK_LIBRARIES Threads::Threads)
endif()

mark_as_advanced(Asio_INCLUDE_DIR)
