// The memory-failure SIGBUS as both its decider (memory-failure.ts) and its sender (siginfo.ts) speak of it:
// the kernel's codes and how a delivery went. A module of its own, so the sender needs nothing else.

// include/uapi/asm-generic/siginfo.h
export const BUS_MCEERR_AR = 4
export const BUS_MCEERR_AO = 5

/** How a signal went: with the kernel's siginfo (ptrace) or as a plain kill(2). */
export type DeliveryWay = 'ptrace' | 'kill'
export interface SigbusResult {
  way: DeliveryWay
  error?: string // why the signal did not go the kernel's way (or at all, when the promise rejects)
}

/** A delivery that sent nothing at all: the target was the sender itself, or kill(2) failed (the process
 *  had gone). */
export interface SigbusNotSent {
  way: 'none'
  error: string
}
