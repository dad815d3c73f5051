// Command kubevirt-manifests writes what KubeVirt's virt-operator would install
// for the test cluster, made by KubeVirt's own constructors at the pinned
// release (pkg/virt-operator/resource/generate/components), so nothing is
// copied by hand:
//
//	DIR/crds.json      a List of KubeVirt's CustomResourceDefinitions, the
//	                   install strategy's 18 plus the KubeVirt CRD itself
//	DIR/webhooks.json  a List of virt-api's validating and mutating webhook
//	                   configurations (they name the Service virt-api would
//	                   have; tests/cluster/up rewrites them to url + caBundle)
//
// Marshalled with encoding/json rather than KubeVirt's MarshallObject, whose
// YAML post-processing cuts a closing quote from some descriptions.
//
// Usage: kubevirt-manifests DIR
package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"

	extv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"

	"kubevirt.io/kubevirt/pkg/virt-operator/resource/generate/components"
)

// The namespace the webhooks' Service references name; up installs into it.
const namespace = "kubevirt"

type list struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Items      []any  `json:"items"`
}

func write(dir, name string, items []any) error {
	b, err := json.MarshalIndent(list{APIVersion: "v1", Kind: "List", Items: items}, "", " ")
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	return os.WriteFile(filepath.Join(dir, name), append(b, '\n'), 0o644)
}

func run(dir string) error {
	// The list GenerateCurrentInstallStrategy (pkg/virt-operator/resource/
	// generate/install/strategy.go) installs, plus the KubeVirt CRD, which
	// virt-operator's own deployment carries.
	makers := []func() (*extv1.CustomResourceDefinition, error){
		components.NewVirtualMachineInstanceCrd, components.NewPresetCrd, components.NewReplicaSetCrd,
		components.NewVirtualMachineCrd, components.NewVirtualMachineInstanceMigrationCrd,
		components.NewVirtualMachineSnapshotCrd, components.NewVirtualMachineSnapshotContentCrd,
		components.NewVirtualMachineRestoreCrd, components.NewVirtualMachineInstancetypeCrd,
		components.NewVirtualMachineClusterInstancetypeCrd, components.NewVirtualMachinePoolCrd,
		components.NewMigrationPolicyCrd, components.NewVirtualMachinePreferenceCrd,
		components.NewVirtualMachineClusterPreferenceCrd, components.NewVirtualMachineExportCrd,
		components.NewVirtualMachineCloneCrd, components.NewVirtualMachineBackupCrd,
		components.NewVirtualMachineBackupTrackerCrd,
		components.NewKubeVirtCrd,
	}
	crds := make([]*extv1.CustomResourceDefinition, 0, len(makers))
	for _, newCRD := range makers {
		crd, err := newCRD()
		if err != nil {
			return err
		}
		crds = append(crds, crd)
	}
	sort.Slice(crds, func(i, j int) bool { return crds[i].Name < crds[j].Name })
	items := make([]any, 0, len(crds))
	for _, crd := range crds {
		items = append(items, crd)
	}
	if err := write(dir, "crds.json", items); err != nil {
		return err
	}
	// Not virt-operator's own validating webhook (no operator runs), nor the
	// launcher-pod mutating webhook, which virt-operator installs only with
	// a feature gate (ContainerPath volumes) that the test cluster leaves off.
	return write(dir, "webhooks.json", []any{
		components.NewVirtAPIValidatingWebhookConfiguration(namespace),
		components.NewVirtAPIMutatingWebhookConfiguration(namespace),
	})
}

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: kubevirt-manifests DIR")
		os.Exit(2)
	}
	if err := run(os.Args[1]); err != nil {
		fmt.Fprintln(os.Stderr, "kubevirt-manifests:", err)
		os.Exit(1)
	}
}
