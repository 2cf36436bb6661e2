/** A mistake on the command line or in a file it names: printed with a pointer to --help, exit code 64 (EX_USAGE). */
export class UsageError extends Error {}
