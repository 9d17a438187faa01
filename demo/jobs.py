"""The Python counterparts of php-resque's demo jobs (demo/job.php, demo/bad_job.php)."""

from __future__ import annotations

import time

import pyresque


@pyresque.register("PHP_Job")
class PHP_Job:  # noqa: N801 - the wire name php-resque's demo uses
    """php-resque style: ``self.args`` is the one dict enqueued; the return value is the result."""

    def perform(self):
        time.sleep(0.5)
        return {"greeting": f"Hello, {self.args.get('name', 'world')}!"}


@pyresque.register("Bad_PHP_Job")
class Bad_PHP_Job:  # noqa: N801
    def perform(self):
        raise RuntimeError("Unable to run this job!")


@pyresque.register("Mailer::Send")
class SendMail:
    """Ruby style: positional args, as Ruby's ``Mailer::Send.perform(to, subject)``."""

    @staticmethod
    def perform(to, subject):
        time.sleep(0.2)
        return f"sent {subject!r} to {to}"
