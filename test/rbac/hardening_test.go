package rbac_test

import (
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
)

// TestControllerRunsNonRootReadOnly asserts on the rendered manifests (default
// and fake backend) that the controller runs as non-root, with a read-only
// root filesystem, no privilege escalation, no added capabilities (ALL
// dropped), no host namespaces and a seccomp profile.
func TestControllerRunsNonRootReadOnly(t *testing.T) {
	for _, values := range [][]string{nil, {"--set", "settings.backend=fake"}} {
		var deployments []*appsv1.Deployment
		for _, o := range render(t, "default.yaml", values...) {
			if o.GetKind() == "Deployment" {
				deployments = append(deployments, convert[appsv1.Deployment](t, o))
			}
		}
		if len(deployments) != 1 {
			t.Fatalf("values %v: %d Deployments rendered, want 1", values, len(deployments))
		}
		pod := deployments[0].Spec.Template.Spec
		if psc := pod.SecurityContext; psc == nil || psc.RunAsNonRoot == nil || !*psc.RunAsNonRoot {
			t.Errorf("values %v: pod securityContext.runAsNonRoot is not true: %+v", values, psc)
		}
		if pod.HostNetwork || pod.HostPID || pod.HostIPC {
			t.Errorf("values %v: the controller pod shares host namespaces", values)
		}
		for _, c := range append(pod.InitContainers, pod.Containers...) {
			sc := c.SecurityContext
			switch {
			case sc == nil:
				t.Errorf("values %v: container %s has no securityContext", values, c.Name)
				continue
			case sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem:
				t.Errorf("values %v: container %s: readOnlyRootFilesystem is not true", values, c.Name)
			case sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation:
				t.Errorf("values %v: container %s: allowPrivilegeEscalation is not false", values, c.Name)
			case sc.Privileged != nil && *sc.Privileged:
				t.Errorf("values %v: container %s is privileged", values, c.Name)
			case sc.Capabilities == nil || len(sc.Capabilities.Add) > 0 || !containsAll(sc.Capabilities.Drop):
				t.Errorf("values %v: container %s: capabilities must drop ALL and add none: %+v", values, c.Name, sc.Capabilities)
			case sc.RunAsUser != nil && *sc.RunAsUser == 0:
				t.Errorf("values %v: container %s runs as uid 0", values, c.Name)
			}
			if sc.SeccompProfile == nil && (pod.SecurityContext == nil || pod.SecurityContext.SeccompProfile == nil) {
				t.Errorf("values %v: container %s has no seccomp profile", values, c.Name)
			}
		}
	}
}

func containsAll(caps []corev1.Capability) bool {
	for _, c := range caps {
		if c == "ALL" {
			return true
		}
	}
	return false
}
