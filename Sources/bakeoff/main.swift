#if canImport(Glibc)
@preconcurrency import Glibc
#elseif canImport(Darwin)
@preconcurrency import Darwin
#endif
import BakeoffCLI

// A closed pipe is an EPIPE the commands handle (`bakeoff export | head` ends quietly), not a signal.
signal(SIGPIPE, SIG_IGN)
exit(BakeoffCLI.main(arguments: CommandLine.arguments.dropFirst()))
