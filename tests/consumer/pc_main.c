/* Built by run_consumer_test.cmake with nothing but `pkg-config --cflags --libs lifeline`. */
#include <lifeline/pb.h>

#include <stdio.h>

int main(void)
{
    if (sdk_send_pb(NULL, NULL, 0) != SDK_EINVAL) {
        return 1;
    }
    printf("consumer: ok (pkg-config)\n");
    return 0;
}
