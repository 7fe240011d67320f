// Package runtime loads compiled xdpc artifacts into the kernel and runs
// packets through them.
//
// An artifact is the ELF object written by compiler.Artifact.WriteELF:
// ReadArtifact turns it back into a cilium/ebpf collection spec and its
// manifest. A TestProgram is an artifact loaded but not attached, for
// BPF_PROG_TEST_RUN: it fills the maps of the policy's sets from the
// manifest, runs one frame at a time and reports the XDP action and the
// counter slots the frame moved.
//
// Errors from the kernel are wrapped with the operation that failed. A
// verifier rejection stays reachable with errors.As(err, &*ebpf.VerifierError)
// so callers can print the verifier log; for compiled policies it is a
// compiler bug.
package runtime
