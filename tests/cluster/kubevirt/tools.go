//go:build tools

// The two KubeVirt programs tests/cluster/lib.sh builds from this module.
// Importing them here (never compiled: the build tag) keeps `go mod tidy`
// from dropping their dependencies from go.mod and go.sum.
package tools

import (
	_ "kubevirt.io/kubevirt/cmd/virt-api"
	_ "kubevirt.io/kubevirt/cmd/virt-controller"
)
