"""A hyperparameter search per structure, so that structures are compared each at its best (Lucic et
al. 2018, "Are GANs Created Equal?"): every -net value gets its own Optuna study with the same
number of trials and the same step budget per trial. Trials are ordinary runs, trained by the
same `main.py train` a sweep starts (here, or on Dask workers); the driver asks Optuna for each
trial's flags, reads the trial's validation records as they come to report them, and tells Optuna
each trial's last validation score. With a pruner, each trial waits after each validation for the
driver's verdict (runfolder/verdicts.py), so that which trials are pruned, and where, does not
depend on how fast either runs; those clearly behind save and exit, and `runs` shows them as
pruned. Study state lives in the sweep folder in Optuna's journal storage (a file), so a killed
driver restarted with the same command finishes the running trials from their checkpoints and
repeats no finished one.

    space = parse_space({"lr": {"low": 1e-4, "high": 1e-2, "log": True}, "gan_loss": ["dcgan", "none"]}, flags, "grid.toml")
    search = Search(space, trials=20, max_steps=300)
    summary = run_search(search, ["unet", "examples/factorised.py:Factorised"], "checkpoints", flags, LocalTrials(...), parallel=2)
"""
import json
import math
import re
import time
from dataclasses import dataclass, field
from pathlib import Path

from cli.argtypes import INTEGER_TYPES
from metrics import METRICS, better_is_higher, judged, judged_label
from runfolder.events import FAILED, FINISHED, PRUNED, run_status
from runfolder.layout import CheckpointsRoot, RunFolder, search_trial_name
from runfolder.metrics import append_record, metric_lines, read_metrics, validation_records
from runfolder.verdicts import VerdictGate
from utils.errors import UserError
from utils.fsio import make_folder, write_text_atomic
from utils.registry import Entry

# What a search may not vary: the data and the budget are what every trial shares, the seed is
# the finals', and where a run goes or how it is watched is not a hyperparameter.
NOT_SEARCHABLE = ("data", "seed", "max_steps", "epochs", "max_seconds", "network", "device", "name", "checkpoints")
POLL_S = 0.5
BOOTSTRAP = 1000  # resamples for the best-of-k band


@dataclass(frozen=True)
class Dimension:
    """One searched flag (or --net-arg NAME, as "net_args.NAME"): a range or a list of choices."""

    key: str
    low: float | None = None
    high: float | None = None
    log: bool = False
    integer: bool = False
    choices: tuple | None = None

    def suggest(self, trial):
        if self.choices is not None:
            return trial.suggest_categorical(self.key, list(self.choices))
        if self.integer:
            return trial.suggest_int(self.key, int(self.low), int(self.high), log=self.log)
        return trial.suggest_float(self.key, float(self.low), float(self.high), log=self.log)


def parse_space(table, flags, source):
    """{key: Dimension} of a [space] table: `key = {low = L, high = H, log = true}` for a range (an
    integer flag takes integers), `key = [a, b, c]` for choices, and `[space.net_args]` for a
    plug-in's arguments. Anything a search cannot use is one UserError naming the key and `source`."""
    if not isinstance(table, dict) or not table:
        raise UserError(source, "its [space] table is empty: name at least one flag to search")
    space = {}
    for key, value in table.items():
        if key in ("net_args", "disc_args"):
            if not isinstance(value, dict) or not value:
                raise UserError(source, f"space key {key!r} must be a table of the network's arguments")
            for name, entry in value.items():
                space[f"{key}.{name}"] = dimension(f"{key}.{name}", entry, None, source)
            continue
        dest = key.replace("-", "_")
        if dest not in flags:
            raise UserError(source, f"space key {key!r} is not a train flag")
        if dest in NOT_SEARCHABLE or flags[dest].per_run or flags[dest].steers:
            raise UserError(source, f"space key {key!r} cannot be searched: it is the data, the budget, the seed or where a run "
                                    f"goes; set it as a flag")
        space[dest] = dimension(dest, value, flags[dest], source)
    return space


def dimension(key, entry, flag, source):
    if isinstance(entry, list):
        if not entry:
            raise UserError(source, f"space key {key!r} has no choices")
        return Dimension(key, choices=tuple(entry))
    if not isinstance(entry, dict) or not {"low", "high"} <= set(entry) or set(entry) - {"low", "high", "log"}:
        raise UserError(source, f"space key {key!r} must be a list of choices or {{low = ..., high = ..., log = true|false}}")
    low, high, log = entry["low"], entry["high"], bool(entry.get("log", False))
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (low, high)):
        raise UserError(source, f"space key {key!r}: low and high must be numbers")
    if not low < high:
        raise UserError(source, f"space key {key!r} has an empty range: low {low} is not below high {high}")
    if log and low <= 0:
        raise UserError(source, f"space key {key!r} is log-uniform from {low}: a log range must stay above 0")
    integer = flag.options.get("type") in INTEGER_TYPES if flag is not None else isinstance(low, int) and isinstance(high, int)
    return Dimension(key, low, high, log, integer)


def point_values(params):
    """Train-flag values ({dest: value}, net_args as a dict) of a trial's sampled parameters."""
    values = {}
    for key, value in params.items():
        if "." in key:
            table, name = key.split(".", 1)
            values.setdefault(table, {})[name] = value
        else:
            values[key] = value
    return values


def expected_best_of(scores, ks, higher=True):
    """The expected best of k trials drawn (with replacement) from `scores`, for each k in `ks`
    (Dodge et al. 2019, "Show Your Work"): with the n scores sorted worst first, the i-th is the
    best of k draws with probability (i/n)^k - ((i-1)/n)^k."""
    import numpy as np  # here, not at the top: `sweep -h` reads the samplers and pruners and must stay light

    ordered = np.sort(np.asarray(scores, dtype=float) * (1 if higher else -1))
    n = len(ordered)
    weights = lambda k: (np.arange(1, n + 1) / n) ** k - (np.arange(0, n) / n) ** k  # noqa: E731
    return [float((weights(k) * ordered).sum()) * (1 if higher else -1) for k in ks]


def best_of_curve(scores, higher=True, seed=0):
    """{"k", "expected", "low", "high"}: the expected best of k trials for k = 1..n, with a 90%
    bootstrap band (the same curve over resamples of the finished trials)."""
    import numpy as np

    n = len(scores)
    ks = list(range(1, n + 1))
    rng = np.random.default_rng(seed)
    resampled = np.array([expected_best_of(rng.choice(scores, n, replace=True), ks, higher) for _ in range(BOOTSTRAP)])
    return {"k": ks, "expected": expected_best_of(scores, ks, higher), "low": np.percentile(resampled, 5, axis=0).tolist(),
            "high": np.percentile(resampled, 95, axis=0).tolist()}


@dataclass(frozen=True)
class Strategy(Entry):
    """A sampler or a pruner, by the name --sampler or --prune takes: what -h says of it, Optuna's
    class as "module:Class" with the options it is built with (optuna imported only then), and, for
    a pruner, why a trial it stopped was stopped."""

    options: tuple = ()  # (name, value) pairs for the constructor
    per_budget: tuple = ()  # (name, fraction) pairs: that fraction of --max-steps, in steps (a pruner's warm-up or first rung)
    seeded: bool = False  # takes the search's --seed
    reason: str = ""
    prunes: bool = True  # a pruner's: whether it ever stops a trial (trials then wait at a gate for its verdict)

    def build(self, search):
        """Optuna's sampler or pruner for `search`."""
        scaled = {name: max(1, round(fraction * search.max_steps)) for name, fraction in self.per_budget}
        return self.load()(**dict(self.options), **scaled, **({"seed": search.seed} if self.seeded else {}))


SAMPLERS = {
    "tpe": Strategy("TPE (Bergstra et al. 2011)", "optuna.samplers:TPESampler", seeded=True),
    "random": Strategy("random search", "optuna.samplers:RandomSampler", seeded=True),
}
PRUNERS = {
    # Settings from bench/search.py (docs/benchmarks.md): two trials run whole before any is judged, and none is
    # judged in the first half of its budget, where the trials' curves still cross (a best trial behind until late).
    "median": Strategy("below the median of the trials before it at the same step, after 2 trials and half the budget",
                       "optuna.pruners:MedianPruner", (("n_startup_trials", 2),), per_budget=(("n_warmup_steps", 0.5),),
                       reason="behind the median of the trials before it"),
    "halving": Strategy("successive halving: kept only while among the best of the trials at its step",
                        "optuna.pruners:SuccessiveHalvingPruner", (("reduction_factor", 3),), per_budget=(("min_resource", 0.25),),
                        reason="not among the best the successive-halving pruner keeps at its step"),
    "hyperband": Strategy("Hyperband (Li et al. 2018): successive halving in brackets that start judging at different steps",
                          "optuna.pruners:HyperbandPruner", per_budget=(("min_resource", 0.25), ("max_resource", 1.0)),
                          reason="not among the best Hyperband keeps in its bracket at its step"),
    "none": Strategy("no pruning: every trial runs its whole budget", "optuna.pruners:NopPruner", prunes=False),
}

NO_PRUNING = PRUNERS["none"]
DEFAULT_PRUNER = "median"  # `sweep --prune`'s default


@dataclass
class Search:
    """What every structure's study shares: the space, the number of trials and the step budget per
    trial, the objective(s), the sampler and pruner, and the flags every trial takes."""

    space: dict
    trials: int
    max_steps: int
    objectives: tuple = ("psnr",)
    sampler: str = "tpe"
    prune: str = "median"
    seed: int = 0
    fixed: dict = field(default_factory=dict)  # {dest: value} of the flags set for every trial (the data, say)

    @property
    def directions(self):
        return ["maximize" if better_is_higher(name) else "minimize" for name in self.objectives]

    @property
    def prunes(self):
        """Whether trials are judged at each validation: a pruner is chosen, and one objective
        (Optuna prunes single-objective studies only; with two every trial runs its whole budget)."""
        return PRUNERS[self.prune].prunes and len(self.objectives) == 1


def check_objectives(names, source="--objective"):
    unknown = [name for name in names if name not in METRICS or not METRICS[name].validated]
    if unknown:
        raise UserError(source, f"{unknown[0]} is not a validation score (one of "
                                f"{', '.join(n for n, m in METRICS.items() if m.validated)})")
    if len(names) > 2:
        raise UserError(source, "takes one objective, or two for a Pareto front")


def study_name(search, structure):
    data = Path(str(search.fixed.get("data", "data"))).name
    return f"{data}|{structure}|{search.max_steps} steps|{','.join(search.objectives)}"


def slug(text):
    return re.sub(r"[^A-Za-z0-9.+-]+", "-", str(text)).strip("-")


def open_study(search, structure, journal):
    import optuna
    from optuna.storages.journal import JournalFileBackend, JournalStorage

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    pruner = (PRUNERS[search.prune] if search.prunes else NO_PRUNING).build(search)
    storage = JournalStorage(JournalFileBackend(str(journal)))
    return optuna.create_study(study_name=study_name(search, structure), storage=storage, sampler=SAMPLERS[search.sampler].build(search),
                               pruner=pruner, directions=search.directions, load_if_exists=True)


class StructureStudy:
    """One structure's search: its Optuna study (`optuna`), and the trials of it that run now, with
    their run folder, their Optuna trial and the validation steps already reported."""

    def __init__(self, search, structure, optuna_study, root, flags):
        self.search, self.structure, self.optuna, self.root, self.flags = search, structure, optuna_study, Path(root), flags
        self.running = {}  # run name -> {"trial": optuna Trial, "reported": set of steps, "pruning": bool, "gate": VerdictGate}

    def run_name(self, number):
        data = Path(str(self.search.fixed.get("data", "data"))).name
        return search_trial_name(slug(data), slug(Path(self.structure).stem if '/' in self.structure else self.structure), number)

    def counted(self):
        """Trials finished (complete, pruned or failed) and running, as Optuna has them."""
        import optuna

        states = [t.state for t in self.optuna.get_trials(deepcopy=False)]
        done = sum(s in (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED, optuna.trial.TrialState.FAIL) for s in states)
        return done, states.count(optuna.trial.TrialState.RUNNING)

    def left_to_ask(self):
        done, running = self.counted()
        return max(0, self.search.trials - done - running)

    @property
    def space(self):
        """The search space as this structure takes it: a built-in takes flags, not [space.net_args]."""
        from experiments.sweep import for_its_networks

        tables = for_its_networks({"network": self.structure, "net_args": {}, "disc": self.search.fixed.get("disc", "patch"),
                                   "disc_args": {}})
        return {key: dim for key, dim in self.search.space.items() if key.split(".")[0] in tables or "." not in key}

    def new(self):
        """(run name, train argv) of a new trial, asked of Optuna now."""
        trial = self.optuna.ask()
        values = point_values({key: dim.suggest(trial) for key, dim in self.space.items()})
        name = self.run_name(trial.number)
        trial.set_user_attr("run", name)
        self.running[name] = {"trial": trial, "reported": set(), "pruning": False, "gate": self.gate(name)}
        return name, self.argv(name, values)

    def interrupted(self):
        """(run name, train argv with --resume) of each trial a killed driver left running."""
        import optuna

        jobs = []
        for frozen in self.optuna.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
            name = frozen.user_attrs.get("run") or self.run_name(frozen.number)
            trial = optuna.trial.Trial(self.optuna, frozen._trial_id)
            self.running[name] = {"trial": trial, "reported": {int(step) for step in frozen.intermediate_values}, "pruning": False,
                                  "gate": self.gate(name)}
            resume = RunFolder(self.root / name).last.exists()
            jobs.append((name, self.argv(name, point_values(frozen.params)) + (["--resume"] if resume else [])))
        return jobs

    def gate(self, name):
        """Trial `name`'s gate, opened before it starts: it then waits at each validation for its verdict."""
        return VerdictGate.open(self.root, name) if self.search.prunes else None

    def argv(self, name, values):
        from experiments.sweep import Point, for_its_networks

        # A searched network argument joins those given as flags (--net-arg width=8 with [space.net_args] blocks).
        tables = {table: {**self.search.fixed.get(table, {}), **values[table]} for table in ("net_args", "disc_args") if table in values}
        point = Point(for_its_networks({**self.search.fixed, "network": self.structure, **values, **tables,
                                        "max_steps": self.search.max_steps, "seed": 0}), self.flags, name=name)
        return point.train_argv(self.root)

    def report(self):
        """Report every new validation score of the running trials, and give each trial that waits
        on a validation its verdict (a trial at its last step is never pruned: it has nothing left
        to save; a validation that did not score the objective, JOD between --perceptual-every
        validations say, is a "go"); the names of those told to stop, which save and exit by
        themselves. Every look beats each gate's heartbeat, so a trial knows its driver lives."""
        if len(self.search.objectives) > 1:  # Optuna takes intermediate values of single-objective studies only
            return []
        objective = self.search.objectives[0]
        key = f"val/{objective}"
        stopped = []
        for name, state in self.running.items():
            if state["pruning"]:
                continue
            if state["gate"]:  # a gate only where trials are judged (Search.prunes)
                state["gate"].beat()
            for record in read_metrics(self.root / name, having=key):
                if record["step"] not in state["reported"] and isinstance(record.get(key), (int, float)):
                    state["trial"].report(judged(objective, record[key]), record["step"])
                    state["reported"].add(record["step"])
            step = state["gate"].waiting() if state["gate"] else None
            if step is None:
                continue
            if step not in state["reported"]:
                if validated_without(self.root / name, step, key):
                    state["gate"].tell(step, stop=False)
                continue  # else its record comes with the next look
            stop = step < self.search.max_steps and state["trial"].should_prune()
            state["gate"].tell(step, stop)
            if stop:
                state["pruning"] = True
                stopped.append(name)
        return stopped

    def end(self, name, code):
        """Tell Optuna how the trial `name` ended (its run's exit `code`)."""
        import optuna

        state = self.running.pop(name)
        trial, folder = state["trial"], self.root / name
        if state["pruning"] and not (code == 0 and run_status(folder) == FINISHED):  # not one that ended as it was stopped
            steps = max(state["reported"] | {0})
            append_record(folder, {"step": steps, "event": PRUNED, "reason": PRUNERS[self.search.prune].reason})
            self.optuna.tell(trial, state=optuna.trial.TrialState.PRUNED)
            return "pruned"
        values = last_scores(folder, self.search.objectives)
        if code != 0 or values is None:
            reason = failure_reason(folder, code) if code != 0 else "no validation score (the dataset has no validation part?)"
            trial.set_user_attr("reason", reason)
            self.optuna.tell(trial, state=optuna.trial.TrialState.FAIL)
            return f"failed: {reason}"
        self.optuna.tell(trial, values if len(values) > 1 else values[0])
        return "finished " + ", ".join(f"{n} {v:.4g}" for n, v in zip(self.search.objectives, values))


def validated_without(folder, step, key):
    """Whether the run in `folder` logged a validation at `step` that has no value for `key`."""
    return any(r.get("step") == step and not isinstance(r.get(key), (int, float)) for r in validation_records(metric_lines(folder)))


def last_scores(folder, objectives):
    """The objectives' values at a run's last validation, as they are judged (a ratio: its distance from 1), or None."""
    records = read_metrics(folder, having=f"val/{objectives[0]}")
    if not records:
        return None
    values = [judged(name, records[-1].get(f"val/{name}")) for name in objectives]
    return values if all(isinstance(v, (int, float)) and math.isfinite(v) for v in values) else None


def failure_reason(folder, code):
    """The one line a failed trial's run gave: its failure event, or the error line of its log."""
    failed = [r for r in read_metrics(folder, having="event") if r.get("event") == FAILED]
    if failed:
        return str(failed[-1].get("reason", "failed"))
    log = CheckpointsRoot(Path(folder).parent).sweep_log(Path(folder).name)
    lines = log.read_text(errors="replace").splitlines() if log.exists() else []
    # vgan's own "error: FILE: ..." lines, and argparse's "main.py train: error: argument ..."
    errors = [line.split("error: ", 1)[1] for line in lines if line.startswith("error: ") or ": error: " in line]
    return errors[-1] if errors else f"exit code {code}"


def run_search(search, structures, root, flags, runner, parallel, say=print):
    """Every structure's study to `search.trials` trials, `parallel` trials at a time on `runner`
    (LocalTrials or cluster.DaskTrials); returns the summary, which is also kept beside the
    journal for the page."""
    journal = CheckpointsRoot(root).search_journal
    make_folder(journal.parent)
    studies = [StructureStudy(search, structure, open_study(search, structure, journal), root, flags) for structure in structures]
    owner = {}
    try:
        for study in studies:
            for name, argv in study.interrupted():
                say(f"search: {name} resumes (its driver stopped)")
                runner.start(name, argv)
                owner[name] = study
        while True:
            while runner.running < parallel and any(study.left_to_ask() for study in studies):
                # the structure with the fewest trials so far goes next: each gets its trials as early as the other
                study = min((s for s in studies if s.left_to_ask()), key=lambda s: sum(s.counted()))
                name, argv = study.new()
                runner.start(name, argv)
                owner[name] = study
            for study in studies:
                for name in study.report():
                    say(f"search: pruning {name}")
            for name, code in runner.ended():
                say(f"search: {name} {owner.pop(name).end(name, code)}")
            if not owner and not any(study.left_to_ask() for study in studies):
                break
            time.sleep(POLL_S)
    except BaseException:
        runner.stop_all()
        raise
    summary = summarize(search, studies)
    write_text_atomic(CheckpointsRoot(root).search_summary, json.dumps(summary, indent=1))
    return summary


def summarize(search, studies):
    """Per structure: every trial (run, parameters, status, scores, the reason of a failure, steps
    trained), the best trial, the trial-steps pruning saved, the best-of-k curve and, for two
    objectives, the Pareto front."""
    import optuna

    result = {"objectives": list(search.objectives), "labels": [judged_label(name) for name in search.objectives],
              "trials": search.trials, "max_steps": search.max_steps, "structures": {}}
    for study in studies:
        trials = study.optuna.get_trials(deepcopy=False)
        rows = []
        for t in trials:
            steps = max([int(s) for s in t.intermediate_values] or [search.max_steps if t.state == optuna.trial.TrialState.COMPLETE else 0])
            rows.append({"number": t.number, "run": t.user_attrs.get("run"), "params": t.params, "status": t.state.name.lower(),
                         "values": t.values, "reason": t.user_attrs.get("reason"),
                         "steps": search.max_steps if t.state == optuna.trial.TrialState.COMPLETE else steps})
        complete = [t for t in trials if t.state == optuna.trial.TrialState.COMPLETE]
        entry = {"study": study.optuna.study_name, "rows": rows,
                 "saved_steps": sum(search.max_steps - r["steps"] for r in rows if r["status"] == "pruned"),
                 "budget_steps": search.max_steps * len(rows)}
        if complete and len(search.objectives) == 1:
            best = study.optuna.best_trial
            entry["best"] = {"number": best.number, "run": best.user_attrs.get("run"), "params": best.params, "value": best.value}
            entry["curve"] = best_of_curve([t.value for t in complete], better_is_higher(search.objectives[0]))
        elif complete:
            entry["pareto"] = [{"number": t.number, "run": t.user_attrs.get("run"), "params": t.params, "values": t.values}
                               for t in study.optuna.best_trials]
            entry["best"] = entry["pareto"][0] | {"value": entry["pareto"][0]["values"][0]}
        result["structures"][study.structure] = entry
    return result


class LocalTrials:
    """Trials as `main.py train` children on this machine, each with an equal share of its cores and,
    where there are GPUs, one of them (the least used), as a grid sweep's points get theirs."""

    def __init__(self, main_py, root, parallel, gpus=()):
        from utils.gpus import GpuPool

        self.main_py, self.root, self.parallel, self.children = main_py, Path(root), parallel, {}
        self.pool, self.held = GpuPool(gpus), {}

    @property
    def running(self):
        return len(self.children)

    def start(self, name, argv):
        from experiments.sweep import start_training

        self.held[name] = self.pool.take(1)
        self.children[name] = start_training(self.main_py, argv, sharing_cores_with=self.parallel, log_for=self.root / name,
                                             gpus=self.held[name])

    def stop(self, name):
        import signal

        self.children[name].send_signal(signal.SIGINT)  # save and exit, as a Ctrl-C'd train does

    def ended(self):
        done = [(name, child.returncode) for name, child in self.children.items() if child.poll() is not None]
        for name, _ in done:
            del self.children[name]
            self.pool.give_back(self.held.pop(name))
        return done

    def stop_all(self):
        for name in list(self.children):
            self.stop(name)
        for child in self.children.values():
            child.wait()
