"""Weights & Biases logger: one W&B run per training (or evaluation) job.

* The run config is the resolved run config; env steps (``charts/env_steps``) are the
  x-axis of every chart.
* Run name: ``<name>-<env.name>[-<env.task>]-seed<seed>`` (plus ``-<job num>`` in a
  Hydra multirun); all jobs of one Hydra multirun (``-m``, sweeps) share the W&B group
  ``hydra.sweep.dir``, so the dashboard groups the seeds of a sweep.
* Mode: ``mode`` from the config, else ``$WANDB_MODE``, else ``online`` when an API key
  is configured (``$WANDB_API_KEY``, ``$WANDB_IDENTITY_TOKEN_FILE`` or a netrc entry for
  the W&B host) and ``offline`` when none is, so a run never stops at a login prompt.
  Offline runs are written to ``<run_dir>/wandb/offline-run-*`` and can be uploaded
  later with ``wandb sync``. An online run whose start fails (no network, a rejected
  key) falls back to offline with a warning (``offline_fallback``).
* The run id is written to ``<run_dir>/wandb_run_id.txt``; a continued training run
  (``start(..., resume_step=N)``) reads it back and continues the same W&B run
  (``resume="allow"``); ``run_id`` forces a given id. W&B keeps what was logged after the
  checkpoint the run continues from, so those env steps appear twice in its charts
  (metrics.csv and TensorBoard drop them).
"""

from __future__ import annotations

import netrc
import os
import re
import sys
from typing import Any, Mapping, Sequence
from urllib.parse import urlsplit

from meta_rl.loggers.extras import LoggerExtras, exit_code_from_exception

STEP_METRIC = "charts/env_steps"
RUN_ID_FILE = "wandb_run_id.txt"
MODES = ("online", "offline", "disabled", "shared")
DEFAULT_HOST = "https://api.wandb.ai"


# ---------------------------------------------------------------- helpers


def api_key_configured(environ: Mapping[str, str] | None = None) -> bool:
    """Whether W&B credentials exist without asking: env variables or a netrc entry."""
    env = os.environ if environ is None else environ
    if env.get("WANDB_API_KEY") or env.get("WANDB_IDENTITY_TOKEN_FILE"):
        return True
    host = urlsplit(env.get("WANDB_BASE_URL") or DEFAULT_HOST).netloc
    paths = [env["NETRC"]] if env.get("NETRC") else ["~/.netrc", "~/_netrc"]
    for p in paths:
        path = os.path.expanduser(p)
        if not os.path.isfile(path):
            continue
        try:
            creds = netrc.netrc(path).authenticators(host)
        except (netrc.NetrcParseError, OSError):
            continue
        if creds and creds[2]:
            return True
    return False


def resolve_mode(mode: str | None, environ: Mapping[str, str] | None = None) -> str:
    """Config ``mode``, else ``$WANDB_MODE``, else online/offline by whether a key is configured."""
    env = os.environ if environ is None else environ
    if mode:
        return mode
    if env.get("WANDB_MODE"):
        return {"dryrun": "offline", "run": "online"}.get(env["WANDB_MODE"], env["WANDB_MODE"])
    if env.get("WANDB_DISABLED", "").lower() in ("1", "true", "yes"):
        return "disabled"
    return "online" if api_key_configured(env) else "offline"


def hydra_job() -> dict[str, Any] | None:
    """``{"multirun", "sweep_dir", "num"}`` of the current Hydra job, or None outside Hydra."""
    try:
        from hydra.core.hydra_config import HydraConfig
        from hydra.types import RunMode

        if not HydraConfig.initialized():
            return None
        hc = HydraConfig.get()
        return {"multirun": hc.mode == RunMode.MULTIRUN, "sweep_dir": str(hc.sweep.dir), "num": hc.job.get("num")}
    except Exception:  # not a Hydra app, or a partial Hydra config (compose API)
        return None


def sweep_group(job: Mapping[str, Any] | None = None) -> str | None:
    """The W&B group of a Hydra multirun job: its sweep dir (None outside a multirun)."""
    job = hydra_job() if job is None else job
    if not job or not job.get("multirun"):
        return None
    group = os.path.normpath(job["sweep_dir"])
    return group[-128:]  # W&B's limit on group names


def run_name(config: Mapping[str, Any], job: Mapping[str, Any] | None = None) -> str:
    """``<name>-<env.name>[-<env.task>]-seed<seed>[-<hydra job num>]``."""
    env = config.get("env") or {}
    parts = [str(config.get("name", "run")), str(env.get("name", ""))]
    if env.get("task"):
        parts.append(str(env["task"]))
    if config.get("seed") is not None:
        parts.append(f"seed{config['seed']}")
    if job and job.get("multirun") and job.get("num") is not None:
        parts.append(str(job["num"]))
    return "-".join(p for p in parts if p)


def read_run_id(run_dir: str) -> str | None:
    """The W&B run id stored in ``run_dir`` by an earlier start, if any (for resuming)."""
    path = os.path.join(run_dir, RUN_ID_FILE)
    if not os.path.isfile(path):
        return None
    with open(path) as f:
        return f.read().strip() or None


def _artifact_name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "-", name)[:128]


def _flush_service() -> None:
    """Wait until W&B's service process has written everything, if no other run is active.

    ``run.finish`` returns before the service has closed the run's files; W&B completes them
    in an exit hook that does not run reliably in launcher worker processes (joblib/loky,
    submitit). ``wandb.teardown`` waits for it; a later run starts a new service.
    """
    try:
        import wandb
        from wandb.sdk import wandb_setup

        if wandb_setup.singleton().most_recent_active_run is None:
            wandb.teardown()
    except (Exception, SystemExit) as e:  # the run itself is finished; never fail the job here
        print(f"wandb: teardown after finish failed: {e!r}", file=sys.stderr)


# ----------------------------------------------------------------- logger


class WandbLogger(LoggerExtras):
    """Logs to one W&B run. See the module docstring for naming, grouping and modes.

    Args:
        project, entity: where the run goes (entity None = the key's default entity).
        name: run name; None derives it from the config (experiment, env, seed).
        group: run group; None = the Hydra sweep dir in a multirun, no group otherwise.
        tags, notes: shown on the dashboard.
        job_type: "train" for training, "eval" for evaluation jobs.
        mode: "online", "offline", "disabled" (or "shared"); None = automatic (see module).
        log_checkpoints: upload ``checkpoints/latest.pt`` as a "model" artifact at close
            (and whenever :meth:`log_checkpoint` is called).
        run_id: continue this W&B run (``resume``) instead of starting a new one.
        resume: wandb's resume policy when ``run_id`` is set ("allow", "must", "never").
        init_timeout: seconds to wait for the W&B service to start the run.
        offline_fallback: if an online start fails, log offline instead of failing the job.
    """

    def __init__(
        self,
        project: str = "meta-rl",
        entity: str | None = None,
        name: str | None = None,
        group: str | None = None,
        tags: Sequence[str] = (),
        notes: str | None = None,
        job_type: str = "train",
        mode: str | None = None,
        log_checkpoints: bool = False,
        run_id: str | None = None,
        resume: str = "allow",
        init_timeout: float = 90.0,
        offline_fallback: bool = True,
    ) -> None:
        if mode is not None and mode not in MODES:
            raise ValueError(f"logger.mode={mode} is unknown; valid: {', '.join(MODES)} or null (automatic)")
        self.project, self.entity, self.name, self.group = project, entity, name, group
        self.tags, self.notes, self.job_type, self.mode = list(tags or ()), notes, job_type, mode
        self.log_checkpoints, self.run_id, self.resume = log_checkpoints, run_id, resume
        self.init_timeout, self.offline_fallback = init_timeout, offline_fallback
        self.run = None
        self.run_dir: str | None = None
        self._logged_checkpoints: set[tuple[str, float]] = set()

    # -------------------------------------------------------------- protocol
    def start(self, run_dir: str, config: Mapping[str, Any], resume_step: int | None = None) -> None:
        """Start the run; with ``resume_step`` (a continued training run) continue the W&B run
        whose id an earlier start stored in the run dir (a new run if there is none)."""
        import wandb

        self.run_dir = run_dir
        os.makedirs(run_dir, exist_ok=True)
        job = hydra_job()
        mode = resolve_mode(self.mode)
        kwargs = dict(
            project=self.project,
            entity=self.entity,
            name=self.name or run_name(config, job),
            group=self.group or sweep_group(job),
            job_type=self.job_type,
            tags=self.tags or None,
            notes=self.notes,
            dir=run_dir,
            reinit="create_new",
            settings=wandb.Settings(init_timeout=self.init_timeout),
        )
        run_id = self.run_id or (read_run_id(run_dir) if resume_step is not None else None)
        if run_id:
            kwargs.update(id=run_id, resume=self.resume)
        else:
            kwargs.update(config=dict(config))
        try:
            self.run = wandb.init(mode=mode, **kwargs)
        except Exception as e:
            if mode not in ("online", "shared") or not self.offline_fallback:
                raise
            first = (str(e).strip().splitlines() or [type(e).__name__])[0]
            print(f"wandb: online start failed ({first[:200]}); logging offline, "
                  f"upload later with `wandb sync {run_dir}/wandb/offline-run-*`", file=sys.stderr)
            self.run = wandb.init(mode="offline", **kwargs)
        if run_id:  # a continued run may change resumable values (e.g. total_env_steps)
            self.run.config.update(dict(config), allow_val_change=True)
        self.run.define_metric(STEP_METRIC)
        self.run.define_metric("*", step_metric=STEP_METRIC)
        if mode != "disabled":
            with open(os.path.join(run_dir, RUN_ID_FILE), "w") as f:
                f.write(self.run.id + "\n")

    def log(self, metrics: Mapping[str, float], step: int) -> None:
        self._require_run().log({**metrics, STEP_METRIC: metrics.get(STEP_METRIC, step)})

    def close(self, exit_code: int | None = None) -> None:
        """Finish the run (exit code: ``exit_code``, else 1 if an exception is propagating)."""
        run, self.run = self.run, None
        if run is None:
            return
        code = exit_code if exit_code is not None else exit_code_from_exception()
        try:
            if self.log_checkpoints and self.run_dir:
                self._upload_checkpoint(run, os.path.join(self.run_dir, "checkpoints", "latest.pt"), None)
        except Exception as e:  # never lose the run's finish to an upload problem
            print(f"wandb: could not log the final checkpoint: {e}", file=sys.stderr)
        finally:
            run.finish(exit_code=code)
            _flush_service()


    # ---------------------------------------------------------------- extras
    def log_table(self, name: str, columns: Sequence[str], rows: Sequence[Sequence[Any]], step: int) -> None:
        import wandb

        table = wandb.Table(columns=list(columns), data=[list(r) for r in rows])
        self._require_run().log({name: table, STEP_METRIC: step})

    def log_image(self, name: str, path: str, step: int) -> None:
        import wandb

        self._require_run().log({name: wandb.Image(path), STEP_METRIC: step})

    def log_video(self, name: str, path: str, step: int) -> None:
        import wandb

        self._require_run().log({name: wandb.Video(path), STEP_METRIC: step})

    def log_artifact(self, path: str, name: str, type: str, aliases: Sequence[str] | None = None) -> None:  # noqa: A002
        import wandb

        art = wandb.Artifact(_artifact_name(name), type=type)
        if os.path.isdir(path):
            art.add_dir(path)
        else:
            art.add_file(path)
        self._require_run().log_artifact(art, aliases=list(aliases) if aliases else None)

    def log_checkpoint(self, path: str, step: int | None = None) -> None:
        if self.log_checkpoints:
            self._upload_checkpoint(self._require_run(), path, step)

    # --------------------------------------------------------------- helpers
    def _upload_checkpoint(self, run, path: str, step: int | None) -> None:
        if not os.path.isfile(path):
            return
        key = (os.path.abspath(path), os.path.getmtime(path))
        if key in self._logged_checkpoints:
            return
        import wandb

        art = wandb.Artifact(_artifact_name(f"checkpoint-{run.id}"), type="model",
                             metadata={"env_steps": step} if step is not None else None)
        art.add_file(path)
        run.log_artifact(art, aliases=["latest"] + ([f"step-{step}"] if step is not None else []))
        self._logged_checkpoints.add(key)

    def _require_run(self):
        if self.run is None:
            raise RuntimeError("WandbLogger: call start(run_dir, config) before logging (or the run was closed)")
        return self.run
