// Proves the installed package is usable: headers found, library linked, dependencies found.
#include <omnitak/pool/error.hpp>
#include <omnitak/pool/outbound_queue.hpp>

#include <asio/io_context.hpp>
#include <iostream>

int main()
{
    asio::io_context io;
    omnitak::outbound_queue queue(io.get_executor(), 4);
    const std::error_code ec = omnitak::errc::queue_full;
    std::cout << "omnitak-pool consumer: queue capacity " << queue.capacity() << ", "
              << ec.category().name() << ":" << omnitak::to_string(omnitak::errc::queue_full)
              << "\n";
    return queue.capacity() == 4 ? 0 : 1;
}
