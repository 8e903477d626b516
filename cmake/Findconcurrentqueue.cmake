# Findconcurrentqueue
# -------------------
# Finds moodycamel::ConcurrentQueue (Debian: libconcurrentqueue-dev), which installs headers
# under <prefix>/include/concurrentqueue/ and no CMake package configuration.
#
# Imported target:
#   concurrentqueue::concurrentqueue   header-only; include as <concurrentqueue/concurrentqueue.h>
#
# Result variables:
#   concurrentqueue_FOUND, concurrentqueue_INCLUDE_DIR

find_path(concurrentqueue_INCLUDE_DIR NAMES concurrentqueue/concurrentqueue.h)

include(FindPackageHandleStandardArgs)
find_package_handle_standard_args(concurrentqueue REQUIRED_VARS concurrentqueue_INCLUDE_DIR)

if(concurrentqueue_FOUND AND NOT TARGET concurrentqueue::concurrentqueue)
    add_library(concurrentqueue::concurrentqueue INTERFACE IMPORTED)
    set_target_properties(concurrentqueue::concurrentqueue PROPERTIES
        INTERFACE_INCLUDE_DIRECTORIES "${concurrentqueue_INCLUDE_DIR}")
endif()

mark_as_advanced(concurrentqueue_INCLUDE_DIR)
