/* sdk_version and sdk_struct_size (src/abi_info.c): what bindings check at load. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "lifeline/server.h"

static void version_is_the_project_version(void **state)
{
    (void)state;
    assert_string_equal(sdk_version(), LIFELINE_VERSION_STRING);
}

static void sizes_are_the_compiler_sizes(void **state)
{
    (void)state;
    assert_int_equal(sdk_struct_size("sdk_config"), sizeof(sdk_config));
    assert_int_equal(sdk_struct_size("sdk_server_config"), sizeof(sdk_server_config));
    assert_int_equal(sdk_struct_size("sdk_retry_rule"), sizeof(sdk_retry_rule));
    assert_int_equal(sdk_struct_size("sdk_event"), sizeof(sdk_event));
    assert_int_equal(sdk_struct_size("sdk_message"), sizeof(sdk_message));
    assert_int_equal(sdk_struct_size("sdk_stats"), sizeof(sdk_stats));
    assert_int_equal(sdk_struct_size("sdk_session_event"), sizeof(sdk_session_event));
    assert_int_equal(sdk_struct_size("sdk_session_info"), sizeof(sdk_session_info));
}

static void unknown_names_are_zero(void **state)
{
    (void)state;
    assert_int_equal(sdk_struct_size(NULL), 0);
    assert_int_equal(sdk_struct_size(""), 0);
    assert_int_equal(sdk_struct_size("sdk_client"), 0); /* opaque: no size to mirror */
    assert_int_equal(sdk_struct_size("sdk_config "), 0);
    assert_int_equal(sdk_struct_size("SDK_CONFIG"), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(version_is_the_project_version),
        cmocka_unit_test(sizes_are_the_compiler_sizes),
        cmocka_unit_test(unknown_names_are_zero),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
