package gc

// SetTestHookCollect runs f (from the look-up goroutines, several at
// once) with the path of each object about to be
// collected, before its transaction. It returns the function restoring
// the previous hook.
func SetTestHookCollect(f func(path string)) (restore func()) {
	old := testHookCollect
	testHookCollect = f
	return func() { testHookCollect = old }
}
