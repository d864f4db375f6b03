package provisioning

// SetDetachedHook makes Register call f after it stopped waiting for a
// registration and before it stores the assigning state, so that a test
// can let the run finish first.
func SetDetachedHook(s *Service, f func()) { s.testHookDetached = f }
