"""The exit codes of ``pushdctl``.

* 0 :data:`EXIT_OK`: everything asked for was done;
* 1 :data:`EXIT_REFUSED`: the daemon refused (a :class:`errors.Error`), or part of the request
  was not done (a task not added, a name not found); what did succeed is printed first;
* 2 :data:`EXIT_USAGE`: a bad command line (argparse's own code), an unreadable input file;
* 3 :data:`EXIT_UNREACHABLE`: pushd could not be reached, or answered a transient error
  (:class:`errors.TransientError`): trying again later may work;
* 130 :data:`EXIT_INTERRUPTED`: Ctrl-C.
"""

from __future__ import annotations

EXIT_OK = 0
#: The input (e.g. queue.yaml) was refused; for client commands: the daemon refused.
EXIT_INVALID = 1
EXIT_REFUSED = EXIT_INVALID
EXIT_USAGE = 2  # argparse's own code for a bad command line
EXIT_UNREACHABLE = 3
EXIT_INTERRUPTED = 130
