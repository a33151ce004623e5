package slot

// This file has no build constraint, unlike the rest of the package: on a
// platform other than Linux on amd64 or arm64 the package is empty, so the
// one error a build reports is the root package's, which says why.
