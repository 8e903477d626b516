// The CoT message model's out-of-line parts.
#include "omnitak/pool/message.hpp"

namespace omnitak {

cot_control classify_control(std::string_view type) noexcept
{
    if (type == "t-x-c-t") return cot_control::ping;
    if (type == "t-x-c-t-r") return cot_control::pong;
    if (type == "t-x-takp-v") return cot_control::negotiation_offer;
    if (type == "t-x-takp-q") return cot_control::negotiation_request;
    if (type == "t-x-takp-r") return cot_control::negotiation_response;
    return cot_control::none;
}

}  // namespace omnitak
