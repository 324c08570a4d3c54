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

// SetTestHookStep runs f before each step of an object's collection
// (StepDecide, StepAside, StepDelete, StepFinish) with the object's path,
// on whichever goroutine of the run takes that step. It returns the
// function restoring the previous hook.
func SetTestHookStep(f func(step, path string)) (restore func()) {
	old := testHookStep
	testHookStep = f
	return func() { testHookStep = old }
}

// SetTestHookRemove runs f on a remover before it removes the file of a
// committed deletion, with the object's path. It returns the function
// restoring the previous hook.
func SetTestHookRemove(f func(path string)) (restore func()) {
	old := testHookRemove
	testHookRemove = f
	return func() { testHookRemove = old }
}

// LeaseName is the name of a GC instance's aside folder.
var LeaseName = leaseName
