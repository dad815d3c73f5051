/*
 * review — TokenReview, then SubjectAccessReview. See review.h.
 *
 * The user the TokenReview names goes into the SubjectAccessReview as the
 * API server reported it (username, uid, groups, extra), so that group-
 * and extra-based RBAC rules apply exactly as they would to the user's own
 * requests. Both answers come from the API server, but are read
 * defensively all the same: a missing or mistyped field is a refusal or an
 * error, never an allow.
 */
#include "kube/review.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

/* Copies the TokenReview's status.user fields the SubjectAccessReview
 * spec takes. */
static void review__user(const cJSON *user, cJSON *spec)
{
    static const char *const from[] = {"username", "uid", "groups", "extra"};
    static const char *const to[] = {"user", "uid", "groups", "extra"};

    for (size_t i = 0; i < sizeof(from) / sizeof(from[0]); i++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(user, from[i]);
        if (v != NULL && !cJSON_IsNull(v))
            cJSON_AddItemToObject(spec, to[i], cJSON_Duplicate(v, 1));
    }
}

/* The TokenReview: 0 with *user (a new object, or NULL when the token is
 * not valid), or a negative errno. */
static int review__token(struct kube *k, const char *token, cJSON **user, struct kube_error *err)
{
    static const struct kube_resource tr = {"authentication.k8s.io", "v1", "tokenreviews"};
    cJSON *obj = kube_object_new("authentication.k8s.io/v1", "TokenReview", NULL, NULL, NULL);
    cJSON *res = NULL;
    const cJSON *status, *u;
    char *path = kube_path(&tr, NULL, NULL, NULL);
    int rc;

    *user = NULL;
    cJSON_AddStringToObject(cJSON_AddObjectToObject(obj, "spec"), "token", token);
    rc = kube_create(k, path, obj, &res, err);
    /* The body held the token: wipe its copy in the tree. */
    {
        cJSON *spec = cJSON_GetObjectItemCaseSensitive(obj, "spec");
        cJSON *t = cJSON_GetObjectItemCaseSensitive(spec, "token");
        if (cJSON_IsString(t) && t->valuestring)
            explicit_bzero(t->valuestring, strlen(t->valuestring));
    }
    cJSON_Delete(obj);
    free(path);
    if (rc != 0)
        return rc;
    status = cJSON_GetObjectItemCaseSensitive(res, "status");
    if (!cJSON_IsObject(status)) {
        rc = -EBADMSG;
        goto out;
    }
    u = cJSON_GetObjectItemCaseSensitive(status, "user");
    if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(status, "authenticated")) &&
        cJSON_IsObject(u) && cJSON_IsString(cJSON_GetObjectItemCaseSensitive(u, "username")))
        *user = cJSON_Duplicate(u, 1);
out:
    cJSON_Delete(res);
    return rc;
}

/* The SubjectAccessReview for user on path: 0 with *allowed, or a
 * negative errno. */
static int review__access(struct kube *k, const cJSON *user, const char *path, const char *verb,
                          bool *allowed, struct kube_error *err)
{
    static const struct kube_resource sar = {"authorization.k8s.io", "v1", "subjectaccessreviews"};
    cJSON *obj =
        kube_object_new("authorization.k8s.io/v1", "SubjectAccessReview", NULL, NULL, NULL);
    cJSON *spec = cJSON_AddObjectToObject(obj, "spec"), *res = NULL, *nra;
    const cJSON *status;
    char *p = kube_path(&sar, NULL, NULL, NULL);
    int rc;

    review__user(user, spec);
    nra = cJSON_AddObjectToObject(spec, "nonResourceAttributes");
    cJSON_AddStringToObject(nra, "path", path);
    cJSON_AddStringToObject(nra, "verb", verb);
    rc = kube_create(k, p, obj, &res, err);
    cJSON_Delete(obj);
    free(p);
    if (rc != 0)
        return rc;
    status = cJSON_GetObjectItemCaseSensitive(res, "status");
    if (!cJSON_IsObject(status))
        rc = -EBADMSG;
    else
        *allowed = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(status, "allowed")) &&
                   !cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(status, "denied"));
    cJSON_Delete(res);
    return rc;
}

int review_nonresource(struct kube *k, const char *token, const char *path, const char *verb,
                       enum review_decision *out, struct kube_error *err)
{
    cJSON *user = NULL;
    bool allowed = false;
    int rc;

    *out = REVIEW_UNAUTHENTICATED;
    if (token == NULL || *token == '\0')
        return 0;
    /* A failed request was logged by the client (without its body). */
    rc = review__token(k, token, &user, err);
    if (rc != 0 || user == NULL)
        return rc;
    rc = review__access(k, user, path, verb, &allowed, err);
    cJSON_Delete(user);
    if (rc != 0)
        return rc;
    *out = allowed ? REVIEW_ALLOWED : REVIEW_FORBIDDEN;
    return 0;
}
