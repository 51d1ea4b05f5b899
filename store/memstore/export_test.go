package memstore

// Check reports the first inconsistency between the structures of s.
var Check = (*Store).check
