/*
 * review — may this bearer token GET this path? Asked of the API server
 * the way its own delegated authentication and authorization ask (and
 * controller-runtime's metrics filter): a TokenReview
 * (authentication.k8s.io/v1) says whose token it is, then a
 * SubjectAccessReview (authorization.k8s.io/v1) with nonResourceAttributes
 * {path, verb} says whether that user, with its groups and extra, may. So
 * RBAC decides who reads /metrics or the dashboard: a ClusterRole with
 * nonResourceURLs (manifests/metrics-reader.yaml).
 *
 * Both are create calls on the client given, so its identity needs
 * `create` on tokenreviews and subjectaccessreviews. The token is sent
 * only in the TokenReview's body, never logged, and never kept. Nothing is
 * cached here (web/authz does that); each call costs two requests.
 */
#ifndef KVR_REVIEW_H
#define KVR_REVIEW_H

#include "kube/kube.h"

/* The answer; the same values as web/authz.h's enum authz_decision, which
 * cmd passes through (kube must not include web). */
enum review_decision {
    REVIEW_ALLOWED = 0,         /* the token is valid and its user may */
    REVIEW_UNAUTHENTICATED = 1, /* the token is not valid (or expired, or for another audience) */
    REVIEW_FORBIDDEN = 2,       /* valid, but its user may not */
};

/**
 * Reviews token for verb ("get") on the non-resource path (e.g.
 * "/metrics"). Returns 0 and *out, or a negative errno from kube_request()
 * when either review could not be made (e.g. -EACCES when the client may
 * not create reviews, -ETIMEDOUT) or -EBADMSG when the API server's answer
 * lacks its status; err (may be NULL) then says why. An empty token is
 * unauthenticated without asking.
 */
int review_nonresource(struct kube *k, const char *token, const char *path, const char *verb,
                       enum review_decision *out, struct kube_error *err);

#endif
