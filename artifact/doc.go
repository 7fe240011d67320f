// Package artifact is the datapath contract between the compiler, which
// writes artifacts, and the runtime and the lab, which load them: the ELF
// object of one XDP program and the blueprints of its maps (Artifact,
// WriteELF), the JSON manifest stored beside them that maps counter slots,
// sets and redirect targets back to the policy (Manifest), and Read, which
// turns the bytes back into a cilium/ebpf collection spec and the manifest
// and checks that the two agree.
//
// It is the bottom of xdpc's import graph: it imports the standard library
// and cilium/ebpf (asm and btf to describe programs and maps, the ELF
// reader to read them back) and nothing of xdpc, so the runtime can load
// an artifact without the compiler or the policy language. Nothing here
// touches the kernel.
//
// Errors: WriteELF refuses an artifact that cannot become a valid object
// (a missing name, a reference to no map, a BTF type of the wrong size);
// Read refuses bytes that are not an artifact this build understands, or
// whose manifest and object disagree. Both wrap the underlying error.
package artifact
