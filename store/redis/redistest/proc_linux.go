package redistest

import "syscall"

// sysProcAttr has the kernel kill a server when the test process dies,
// however it dies (a test timeout, a crash), so none is left running.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
