// pb.h, sdk.h and server.h compile as C++ and link with C linkage.
#include <lifeline/pb.h>

#include <cstdio>

int main()
{
    sdk_config cfg;
    sdk_config_init(&cfg);
    if (sdk_send_pb(nullptr, nullptr, 0) != SDK_EINVAL) {
        return 1;
    }
    std::printf("consumer: ok (C++)\n");
    return 0;
}
