/*
 * Unit tests for the hash: the values it gives must never change, so they
 * are pinned here as the code before the one hash computed them — FNV-1a's
 * published test vectors, the in-memory tables' start, the Event slots'
 * chaining, and the two values a later process reads back: a replacement's
 * name and a captured ConfigMap's digest.
 */
#include <stdlib.h>
#include <string.h>

#include "base/hash.h"
#include "ctl_test.h"
#include "reconcile/capture.h"
#include "reconcile/recover.h"

TEST(fnv1a_gives_the_published_values)
{
    CHECK(hash_fnv(HASH_FNV_INIT, "", 0) == 0xcbf29ce484222325ull);
    CHECK(hash_fnv(HASH_FNV_INIT, "a", 1) == 0xaf63dc4c8601ec8cull);
    CHECK(hash_fnv(HASH_FNV_INIT, "foobar", 6) == 0x85944171f73967e8ull);
    CHECK(hash_fnv_str(HASH_FNV_INIT, "foobar") == 0x85944171f73967e8ull);
    CHECK(hash_fnv_str(HASH_FNV_INIT, NULL) == HASH_FNV_INIT);
}

TEST(fields_are_terminated_and_null_differs_from_empty)
{
    uint64_t ab_c = hash_fnv_field(hash_fnv_field(HASH_FNV_INIT, "ab"), "c");
    uint64_t a_bc = hash_fnv_field(hash_fnv_field(HASH_FNV_INIT, "a"), "bc");

    CHECK(ab_c != a_bc);
    CHECK(hash_fnv_field(HASH_FNV_INIT, "ab") == hash_fnv(HASH_FNV_INIT, "ab", 3));
    CHECK(hash_fnv_field(HASH_FNV_INIT, NULL) == hash_fnv(HASH_FNV_INIT, "\xff", 1));
    CHECK(hash_fnv_field(HASH_FNV_INIT, NULL) != hash_fnv_field(HASH_FNV_INIT, ""));
}

TEST(table_start_gives_the_values_the_tables_always_had)
{
    /* the work queue's, yaml's and sim's tables */
    CHECK(hash_fnv_str(HASH_TABLE_INIT, "") == 0x14650fb0739d0383ull);
    CHECK(hash_fnv_str(HASH_TABLE_INIT, "vmi/fx/a") == 0x580513f4d63abd7cull);
}

TEST(event_slot_chain_gives_the_values_it_always_had)
{
    /* event_record(): each field's bytes, then a 0xff separator */
    const char *fields[] = {"uid-1", "fx", "Normal", "Recovered", "msg"};
    uint64_t h = HASH_TABLE_INIT;

    for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++)
        h = hash_fnv(hash_fnv_str(h, fields[i]), "\xff", 1);
    CHECK(h == 0x7b006228180f3b13ull);
    CHECK(hash_fnv(hash_fnv_str(HASH_TABLE_INIT, NULL), "\xff", 1) == 0x44bd24d473ccebb4ull);
}

TEST(replacement_names_stay_what_earlier_versions_made)
{
    /* A restarted or upgraded controller finds its replacements by name. */
    char *a = recover_replacement_name("vm-001", "6f1c2a4e-0b7d-4c1e-9a53-2f8e1d7c9b10");
    char *b = recover_replacement_name("vm-001", "");
    char *c = recover_replacement_name("vm-001", "a");
    char *d = recover_replacement_name("Web_Server.01", "6f1c2a4e-0b7d-4c1e-9a53-2f8e1d7c9b10");

    CHECK_STR(a, "vm-001-a0c9dc9bef");
    CHECK_STR(b, "vm-001-e484222325");
    CHECK_STR(c, "vm-001-4c8601ec8c");
    CHECK_STR(d, "web-server-01-a0c9dc9bef");
    free(a);
    free(b);
    free(c);
    free(d);
}

TEST(capture_digest_stays_what_earlier_versions_wrote)
{
    /* The digest in a captured ConfigMap is compared by the next version. */
    cJSON *vm = ctl_load("ctl-vm.json");
    cJSON *labels = cJSON_Parse("{\"kvrecover.io/pool\":\"paper\",\"tier\":\"gold\"}");
    char *digest = NULL, *err = NULL;
    cJSON *cm;

    CHECK(vm && labels);
    cm = capture_configmap(vm, "fx", "vm-005", labels, &digest, &err);
    CHECK(cm != NULL);
    CHECK_STR(digest, "61011c632cdf92bb");
    cJSON_Delete(cm);
    free(digest);
    cJSON_Delete(labels);
    cJSON_Delete(vm);
}
