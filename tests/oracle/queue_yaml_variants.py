"""queue.yaml variants compared with App Engine's validator by test_queueinfo_oracle.py.

Three lists of ``(id, text)``: ``REJECTED`` (App Engine and pushd both refuse), ``STRICTER``
(App Engine accepts, pushd refuses on purpose: see pushd.queue_yaml.config) and ``VALID`` (both accept and
must read the same values). ``mutants()`` derives many more from the corpus, with no expectation
beyond "pushd is never more lenient than App Engine".
"""

from __future__ import annotations

import random


def queue(*lines: str, name: str = "q") -> str:
    """One push queue named ``name`` with extra ``lines`` (already indented by two spaces)."""
    body = "".join(f"  {line}\n" for line in lines)
    return f"queue:\n- name: {name}\n{body}"


def retry(*lines: str, mode: str = "push") -> str:
    """One queue whose retry_parameters hold ``lines``."""
    body = "".join(f"    {line}\n" for line in lines)
    rate = "  rate: 1/s\n" if mode == "push" else "  mode: pull\n"
    return f"queue:\n- name: q\n{rate}  retry_parameters:\n{body}"


def acl(*lines: str) -> str:
    return queue("mode: pull", "acl:", *(f"  {line}" for line in lines))


def top(*lines: str) -> str:
    return "queue:\n- name: q\n  rate: 1/s\n" + "".join(f"{line}\n" for line in lines)


REJECTED: list[tuple[str, str]] = [
    # rate
    *(
        (f"rate {value}", queue(f"rate: {value}"))
        for value in [
            "5/x",
            "5",
            "5/",
            "/s",
            "5/sx",
            "5/sm",
            "5 /s",
            "-1/s",
            "1e3/s",
            ".5/s",
            "5/S",
            "five/s",
            "5/s/s",
            "0.0",
            "1,000/s",
            "5/sec",
            "'5/s\\n'",
            '"0\\n"',
            "[5/s]",
            "{a: 1}",
            "''",
        ]
    ),
    # name
    ("name underscore", queue("rate: 1/s", name="a_b")),
    ("name space", queue("rate: 1/s", name="a b")),
    ("name dot", queue("rate: 1/s", name="a.b")),
    ("name accent", queue("rate: 1/s", name="é")),
    ("name 1e3 is the float 1000.0", queue("rate: 1/s", name="1e3")),
    ("name list", queue("rate: 1/s", name="[a]")),
    ("name mapping", queue("rate: 1/s", name="{}")),
    ("name 500 chars", queue("rate: 1/s", name="a" * 500)),
    ("name missing", "queue:\n- rate: 1/s\n"),
    ("name null", "queue:\n- name:\n  rate: 1/s\n"),
    ("name tilde", "queue:\n- name: ~\n  rate: 1/s\n"),
    # mode
    *((f"mode {v}", queue(f"mode: {v}")) for v in ["PUSH", "pul", "1", "[push]", "pushy"]),
    # integers
    *(
        (f"bucket_size {v}", queue("rate: 1/s", f"bucket_size: {v}"))
        for v in ["x", "5x", "[5]", "{}", ".inf", ".nan", "2001-01-01", "'1.5'", "''"]
    ),
    *(
        (f"max_concurrent_requests {v}", queue("rate: 1/s", f"max_concurrent_requests: {v}"))
        for v in ["many", "1.5.5", "[1]"]
    ),
    # target
    *(
        (f"target {v}", queue("rate: 1/s", f"target: {v}"))
        for v in ["Worker", "-svc", "a.b.c", "v_1.svc", "a" * 64, "svc.", "'svc '", "[svc]"]
    ),
    # retry_parameters
    *(
        (f"retry {line}", retry(line))
        for line in [
            "task_retry_limit: -1",
            "task_retry_limit: x",
            "task_retry_limit: 2147483648",
            "task_retry_limit: [1]",
            "task_age_limit: 0s",
            "task_age_limit: -1d",
            "task_age_limit: 5x",
            "task_age_limit: 5",
            "task_age_limit: ''",
            "task_age_limit: s",
            "task_age_limit: 0.5s",
            "task_age_limit: .nans",
            "task_age_limit: 1e400s",
            "task_age_limit: 9e18d",
            "task_age_limit: '5s '",
            "min_backoff_seconds: -1",
            "min_backoff_seconds: x",
            "max_backoff_seconds: -1",
            "max_backoff_seconds: -.inf",
            "max_doublings: -1",
            "max_doublings: 2147483648",
            "retries: 3",
        ]
    ),
    ("retry min > max", retry("min_backoff_seconds: 10", "max_backoff_seconds: 5")),
    ("retry only max negative", retry("max_backoff_seconds: -0.5")),
    ("retry_parameters scalar", queue("rate: 1/s", "retry_parameters: 5")),
    ("retry_parameters list", queue("rate: 1/s", "retry_parameters: [task_retry_limit: 1]")),
    ("retry duplicate key", retry("task_retry_limit: 1", "task_retry_limit: 2")),
    # acl
    ("acl scalar", queue("mode: pull", "acl: foo")),
    ("acl mapping", queue("mode: pull", "acl: {user_email: a@example.com}")),
    ("acl scalar item", acl("- foo")),
    ("acl list item", acl("- []")),
    ("acl null item", acl("- ~")),
    ("acl unknown key", acl("- email: a@example.com")),
    ("acl email mapping", acl("- user_email: {}")),
    # top level
    ("top unknown key", "queues:\n- name: q\n  rate: 1/s\n"),
    ("queue scalar", "queue: foo\n"),
    ("queue empty string", "queue: ''\n"),
    ("queue mapping", "queue: {name: a}\n"),
    ("queue empty mapping", "queue: {}\n"),
    ("queue scalar item", "queue: [foo]\n"),
    ("queue null item", "queue:\n-\n"),
    ("queue list item", "queue: [[a]]\n"),
    ("queue empty entry", "queue: [{}]\n"),
    ("entry unknown key", queue("rate: 1/s", "priority: high")),
    ("entry duplicate key", queue("rate: 1/s", "rate: 2/s")),
    ("top duplicate key", "queue: []\nqueue: []\n"),
    *(
        (f"total_storage_limit {v}", top(f"total_storage_limit: {v}"))
        for v in ["5X", "1.5", "-1M", "M", "5 M", "1e3", "[]", "''", "1.5.5K", "9" * 400 + "T"]
    ),
    *(
        (f"resume_paused_queues {v}", top(f"resume_paused_queues: {v}"))
        for v in ["maybe", "1", "'true'", "[]"]
    ),
    ("application upper", top("application: MyApp")),
    ("application empty", top("application: ''")),
    # structure and YAML
    ("empty file", ""),
    ("only comments", "# queue:\n#- name: a\n"),
    ("only blank lines", "   \n\n"),
    ("two documents", "queue: []\n---\nqueue: []\n"),
    ("document then empty document", "queue: []\n---\n"),
    ("bad indentation", "queue:\n- name: a\n rate: 1/s\n"),
    ("unclosed flow", "queue: [\n"),
    ("unterminated quote", "queue:\n- name: 'a\n"),
    ("tab indentation", "queue:\n\t- name: a\n"),
    ("anchor and alias", "queue:\n- &q {name: a, rate: 1/s}\n- *q\n"),
    ("anchor alone", "queue:\n- name: &n a\n  rate: 1/s\n"),
    ("top list of mappings", "- name: a\n"),
    ("nul character", "queue: []\n\x00"),
    ("bell character", "queue:\n- name: a\x07\n"),
    ("impossible date", queue("rate: 1/s", "target: 2001-13-45")),
    ("unknown tag", queue("rate: !foo 1/s")),
    ("mapping key list", "queue:\n- ? [a]\n  : b\n"),
    ("undefined alias", "queue: *nope\n"),
    ("yaml directive", "%YAML 1.1\n---\nqueue: []\n"),
    ("non-specific tag", queue("rate: ! 1/s")),
    ("value token", queue("rate: =")),
    ("merge token", queue("rate: <<")),
    ("sign and underscore", queue("rate: 1/s", "target: +_")),
    ("binary tag", queue("rate: 1/s", "target: !!binary YWJj")),
]

STRICTER: list[tuple[str, str]] = [
    ("name empty", queue("rate: 1/s", name="''")),
    ("name 101 chars", queue("rate: 1/s", name="a" * 101)),
    ("name 499 chars", queue("rate: 1/s", name="b" * 499)),
    ("name with final newline", queue("rate: 1/s", name='"a\\n"')),
    ("name duplicate", queue("rate: 1/s") + "- name: q\n  rate: 2/s\n"),
    ("name y is True", queue("rate: 1/s", name="y")),
    ("name yes is True", queue("rate: 1/s", name="yes")),
    ("name octal", queue("rate: 1/s", name="010")),
    ("name hex", queue("rate: 1/s", name="0x1F")),
    ("name sexagesimal", queue("rate: 1/s", name="1:30")),
    ("name underscored int", queue("rate: 1/s", name="1_0")),
    ("rate 00", queue("rate: 00")),
    ("rate 0x0", queue("rate: 0x0")),
    *(
        (f"bucket_size {v}", queue("rate: 1/s", f"bucket_size: {v}"))
        for v in ["0", "-3", "5.5", "true", "1e3", "010", "0x10", "1_0", "1:30", "'٣'"]
    ),
    *(
        (f"max_concurrent_requests {v}", queue("rate: 1/s", f"max_concurrent_requests: {v}"))
        for v in ["0", "-1", "2.5", "on"]
    ),
    ("mode with final newline", queue('mode: "pull\\n"')),
    ("target with final newline", queue("rate: 1/s", 'target: "svc\\n"')),
    *(
        (f"retry {line}", retry(line))
        for line in [
            "task_retry_limit: 1.5",
            "task_retry_limit: 1_0",
            "task_retry_limit: yes",
            "max_doublings: 2.9",
            "min_backoff_seconds: .nan",
            "max_backoff_seconds: .inf",
            "min_backoff_seconds: 1_0",
            "min_backoff_seconds: true",
            "min_backoff_seconds: 1:30",
            "max_backoff_seconds: '1e400'",
            "task_age_limit: ' 5s'",
            "task_age_limit: 1_0s",
            "task_age_limit: 1e3s",
            "task_age_limit: +5s",
            "task_age_limit: 5 s",
        ]
    ),
    ("acl empty entry", acl("- {}")),
    ("acl null email", acl("- user_email:")),
    ("acl empty email", acl("- user_email: ''")),
    ("acl list email", acl("- user_email: [a@example.com]")),
    ("acl email with space", acl("- writer_email: a b")),
    ("acl boolean email", acl("- user_email: no")),
    ("total_storage_limit octal", top("total_storage_limit: 010")),
    ("total_storage_limit final newline", top('total_storage_limit: "5M\\n"')),
    ("resume_paused_queues final newline", top('resume_paused_queues: "True\\n"')),
    ("document scalar", "foo\n"),
    ("document null", "---\n"),
    ("document tilde", "~\n"),
    ("document list of scalars", "- a\n- [b, c]\n"),
    ("explicit str tag", queue("rate: !!str 1/s")),
    ("explicit int tag", queue("rate: 1/s", "bucket_size: !!int 5")),
    ("tag directive", "%TAG !e! tag:example.com,2000:\n---\nqueue: []\n"),
    ("explicit map tag", "queue:\n- !!map {name: a, rate: 1/s}\n"),
]

VALID: list[tuple[str, str]] = [
    ("crlf", "queue:\r\n- name: a\r\n  rate: 1/s\r\n  bucket_size: 3\r\n"),
    ("bom", "\ufeffqueue:\n- name: a\n  rate: 2/m\n"),
    ("no final newline", "queue:\n- name: a\n  rate: 1/h"),
    ("entries commented out", "queue:\n# - name: a\n#   rate: 1/s\n"),
    ("empty queue list", "queue: []\n"),
    ("no queue key", "total_storage_limit: 1G\n"),
    ("quoted numbers", queue("rate: '5/s'", "bucket_size: '7'", "max_concurrent_requests: ' 9 '")),
    ("rate 0 pauses", queue("rate: 0")),
    ("rate 0/s", queue("rate: 0/s")),
    ("fractional rate", queue("rate: 0.5/s", "bucket_size: 1")),
    ("rate with trailing dot", queue("rate: 1./m")),
    ("rate per day", queue("rate: 100/d")),
    ("rate above quota", queue("rate: 1000/s", "bucket_size: 500")),
    ("signed bucket", queue("rate: 1/s", "bucket_size: +5")),
    ("flow style", "queue: [{name: a, rate: 3/s}, {name: b, mode: pull}]\n"),
    ("age 1.5s truncates", retry("task_age_limit: 1.5s")),
    ("age .5m", retry("task_age_limit: .5m")),
    ("age 0.29h", retry("task_age_limit: 0.29h")),
    ("age 1.5d", retry("task_age_limit: 1.5d")),
    ("only min above default max", retry("min_backoff_seconds: 5000")),
    ("only max below default min", retry("max_backoff_seconds: 0.05")),
    ("min equals max", retry("min_backoff_seconds: 2", "max_backoff_seconds: 2")),
    ("backoff exponent", retry("min_backoff_seconds: 1e3", "max_backoff_seconds: 2.5e3")),
    ("backoff zero", retry("min_backoff_seconds: 0", "max_doublings: 0", "task_retry_limit: 0")),
    ("empty retry_parameters", queue("rate: 1/s", "retry_parameters: {}")),
    ("null retry_parameters", queue("rate: 1/s", "retry_parameters:")),
    ("pull retry limit", retry("task_retry_limit: 3", mode="pull")),
    ("pull queue with rate", queue("mode: pull", "rate: 1/s", "bucket_size: 3")),
    ("push queue without rate", queue("bucket_size: 3")),
    ("default overridden", queue("rate: 2/s", name="default")),
    ("default as pull", queue("mode: pull", name="default")),
    ("numeric name", queue("rate: 1/s", name="123")),
    ("date-like name", queue("rate: 1/s", name="2001-01-01")),
    ("acl both keys", acl("- user_email: a@example.com", "  writer_email: b@example.com")),
    ("acl on push queue", queue("rate: 1/s", "acl:", "- user_email: a@example.com")),
    ("empty acl", queue("mode: pull", "acl: []")),
    *(
        (f"resume_paused_queues {v}", top(f"resume_paused_queues: {v}"))
        for v in ["true", "yes", "on", "True", "'False'", "off", "n"]
    ),
    *(
        (f"total_storage_limit {v}", top(f"total_storage_limit: {v}"))
        for v in ["1.5K", "1B", "0", "1024", "0.1K", "2T", "'5M'", "1.M"]
    ),
    ("application", top("application: s~my-app")),
    ("target service only", queue("rate: 1/s", "target: worker")),
    ("comments everywhere", "# head\nqueue: # list\n- name: a # n\n  rate: 1/s # r\n# tail\n"),
    ("unicode comment", "# file d'attente « répliquée »\nqueue:\n- name: a\n  rate: 1/s\n"),
    ("document markers", "---\nqueue: []\n...\n"),
]


MUTATIONS = ("delete", "insert", "swap", "duplicate", "drop", "replace")
INSERTS = [":", "-", " ", "  ", "\t", "'", '"', "#", "x", "0", "\n", "[", "{", "&", "*", "!", "%"]
INSERTS += ["|", ">", "~", ".5", "/s", "e3", "_"]
REPLACEMENTS = ["0", "-1", "5.5", "yes", "~", "''", "1e3", "010", "[]", "{}", "x", "5/s", "1d"]


def mutants(texts: list[str], count: int, seed: int = 20261121) -> list[tuple[str, str]]:
    """``count`` deterministic single mutations of ``texts``."""
    rng = random.Random(seed)
    out: list[tuple[str, str]] = []
    while len(out) < count:
        text = rng.choice(texts)
        lines = text.splitlines(keepends=True) or [""]
        kind = rng.choice(MUTATIONS)
        at = rng.randrange(len(text) + 1)
        i, j = rng.randrange(len(lines)), rng.randrange(len(lines))
        if kind == "delete":
            text = text[:at] + text[at + 1 :]
        elif kind == "insert":
            text = text[:at] + rng.choice(INSERTS) + text[at:]
        elif kind == "swap":
            lines[i], lines[j] = lines[j], lines[i]
            text = "".join(lines)
        elif kind == "duplicate":
            lines.insert(i, lines[i])
            text = "".join(lines)
        elif kind == "drop":
            del lines[i]
            text = "".join(lines)
        else:
            line = lines[i]
            if ":" in line:
                key = line.split(":", 1)[0]
                lines[i] = f"{key}: {rng.choice(REPLACEMENTS)}\n"
            text = "".join(lines)
        out.append((f"mutant {len(out)} ({kind})", text))
    return out
