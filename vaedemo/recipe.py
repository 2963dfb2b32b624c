"""``python -m vaedemo.recipe configs/recipes/NAME.yaml [--target BUNDLE] [--dry-run] [--set KEY=VALUE --runs DIR]``:
make a shipped bundle again from nothing, every training run it went through, in order (on its data, or yours).

A shipped bundle is often the last of a chain of runs, each starting from the weights of the one before
(``train.init_from``) or reading another (a two-stage model's ``train.backbone``), and the configs in configs/ name
those inputs as they stood when each run was made: ``checkpoints/drums_temporal`` meant the backbone shipped that day,
not today's. A recipe writes the chain down so that it runs::

    runs: runs/recipes/shipped           # each run trains in a folder of its own under here
    data:                                # folders the steps read, and the command that makes each
      data/drums_fluidr3: python -m vaedemo.data.soundfont --soundfont ... --kind drums --out data/drums_fluidr3
    targets:                             # bundle name -> the step that makes it
      drums_temporal: temporal_eq
    steps:                               # in order; {NAME} stands for the bundle of an earlier step
      temporal:
        config: configs/drums_temporal.yaml
        set: [train.max_steps=6200, "train.mel_sizes=[]"]
      temporal_8600:
        resume: temporal                 # the same run, continued with these overrides (as --resume)
        set: [train.max_steps=8600]
      temporal_eq:
        config: configs/drums_temporal_eq.yaml
        set: ["train.init_from={temporal_8600}"]

Every input a step reads (``train.init_from``, ``train.backbone``) must be an earlier step's bundle, so that a recipe
depends on its configs and data alone; a run's folder is named after its first step, and a step reads (and a target
names) only the last step of a run. Each step runs to completion through :mod:`vaedemo.training.runner` (a finished
run is reused, an interrupted one resumes): after a crash, the same command goes on where it stopped. A run folder
whose stored config is none of its steps' (a recipe or config edited since) stops the recipe with the first key that
differs. A missing data folder is made by its command, aside (the argument that is the folder becomes ``ROOT.partial``;
``python`` or ``python3`` is this interpreter) and moved into place when whole.
``--target`` runs what that bundle needs (its step, the steps that one continues or reads, and theirs), then writes
the command into the bundle's card (no ``--target``: every target; a recipe without targets runs every step);
``--dry-run`` prints each step's command and state (refused, with the key, where the run would stop on a stored
config) and runs nothing; ``--smoke`` runs the whole chain scaled down (step counts / 1000, a dozen files: the shipped
recipe's 21 steps in 1.9 minutes on two cores, its data already rendered) in folders of its own, to check that it
runs before spending hours on it. ``--set KEY=VALUE`` (repeatable, with ``--runs DIR``) adds an override to every
step, after its own: ``--set data.root=/path/to/sounds --runs runs/mine`` trains the whole chain on your own data.
"""

from __future__ import annotations

import argparse
import re
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from .cli import user_errors
from .errors import ConfigError, DataError, VaedemoError
from .yamlfile import read_yaml

KEYS = {"runs", "data", "targets", "steps", "description"}
STEP_KEYS = {"config", "resume", "set"}
INPUTS = ("init_from", "backbone")  # train keys that name another run's bundle
# a smoke run (--smoke): every step's counts / 1000 (SCALED), on a dozen files, one trajectory copy, small batches
SCALED = ("max_steps", "vae_steps", "discriminator_warmup_len", "lr_decay_start", "beta_warmup_steps",
          "encoder_distill_steps")
SMOKE = ["data.max_files=12", "train.trajectory_copies=1", "train.batch_size=4", "train.val_every_n_steps=2",
         "train.val_batches=1", "train.checkpoint_every_n_steps=1"]  # fmt: skip
# what --set may not change for every step: each step's own length and schedule (a continuation raises max_steps;
# --smoke scales them), its run folder and the bundles it reads
MANAGED = {f"train.{k}" for k in (*SCALED, "run_dir", *INPUTS)}
REFERENCE = re.compile(r"\{([A-Za-z0-9_]+)\}")
PYTHONS = {"python", "python3"}  # a data command's interpreter names that mean this project's (the venv's)


@dataclass
class Step:
    name: str
    config: str  # the run's config (a step that continues a run: that run's first step's)
    overrides: list[str]  # its own --set overrides, {NAME} references as written
    resumes: str | None  # the step whose run it continues


class Recipe:
    """A recipe file, checked: its steps, the folder each trains in, and the overrides each runs with."""

    def __init__(self, path: Path, smoke: bool = False, everywhere: list[str] | None = None, runs: Path | None = None):
        self.path, self.smoke = path, smoke
        self.everywhere = list(everywhere or [])  # --set: overrides of every step, after its own (your own data)
        doc = _read(path)
        self.runs = Path(runs or doc.get("runs") or f"runs/recipes/{path.stem}")
        if smoke:  # a smoke run's folders beside the real ones, never mixed with them
            self.runs = Path(f"{self.runs}-smoke")
        self._resolved: dict[str, object] = {}
        self.data: dict[str, str] = dict(doc.get("data") or {})
        self.steps: dict[str, Step] = {}
        self.continued_by: dict[str, str] = {}  # a step -> the step that continues its run
        for name, spec in doc["steps"].items():
            self.steps[name] = self._step(str(name), spec)
            self._link(self.steps[name])
        self.targets: dict[str, str] = dict(doc.get("targets") or {})
        self._check_reads()
        for name in self.steps:
            self._check_inputs(name)
            self._check_continuation(name)
        for root, command in self.data.items():  # checked as the recipe is read: a dry run shows a bad one too
            _data_argv(root, command, path)

    def _link(self, step: Step) -> None:
        """Note which step continues which run: one line per run."""
        if step.resumes:
            if step.resumes in self.continued_by:
                raise ConfigError(f"steps '{self.continued_by[step.resumes]}' and '{step.name}' of {self.path} both "
                                  f"continue '{step.resumes}': a run goes on in one line.")  # fmt: skip
            self.continued_by[step.resumes] = step.name

    def _check_reads(self) -> None:
        """A step's references and the targets name steps whose bundles stay as they are: the last step of a run."""
        reads = [(f"step '{name}' of {self.path} reads {{{ref}}}", ref)
                 for name, step in self.steps.items() for o in step.overrides for ref in REFERENCE.findall(o)]  # fmt: skip
        for bundle, step in self.targets.items():
            if step not in self.steps:
                raise ConfigError(f"target {bundle} names step '{step}', which {self.path} does not have.")
            reads.append((f"target {bundle} names step '{step}'", step))
        for where, step in reads:
            if step in self.continued_by:  # its run's bundle is the last step's by the time anything reads it
                raise ConfigError(f"{where}, whose run step '{self.continued_by[step]}' continues: name the last step "
                                  "of that run.")  # fmt: skip

    def _step(self, name: str, spec) -> Step:
        where = f"step '{name}' of {self.path}"
        if not isinstance(spec, dict) or set(spec) - STEP_KEYS or ("config" in spec) == ("resume" in spec):
            raise ConfigError(f"{where} needs either a config or the step it resumes (and a list 'set'), nothing else.")
        for key, what in (("config", "the path of a config file"), ("resume", "the name of an earlier step")):
            if key in spec and not isinstance(spec[key], str):
                raise ConfigError(f"{where}: '{key}' must be {what}, not {spec[key]!r}.")
        overrides = spec.get("set") or []
        if not isinstance(overrides, list) or not all(isinstance(o, str) and "=" in o for o in overrides):
            raise ConfigError(f"{where}: 'set' must be a list of KEY=VALUE overrides.")
        for ref in (r for o in overrides for r in REFERENCE.findall(o)):
            if ref not in self.steps:
                raise ConfigError(f"{where} reads {{{ref}}}, which is not an earlier step.")
        resumes = spec.get("resume")
        if resumes is not None:
            if resumes not in self.steps:
                raise ConfigError(f"{where} resumes '{resumes}', which is not an earlier step.")
            return Step(name, self.steps[resumes].config, overrides, resumes)
        if not Path(spec["config"]).is_file():
            raise ConfigError(f"{where}: config {spec['config']} does not exist.")
        return Step(name, spec["config"], overrides, None)

    # ------------------------------------------------------------------------------------------------ geometry
    def chain(self, name: str) -> list[str]:
        """The steps of ``name``'s run, from the one that started it to ``name``."""
        step = self.steps[name]
        return (self.chain(step.resumes) if step.resumes else []) + [name]

    def run_dir(self, name: str) -> Path:
        """The folder of the step's run, named after the run's first step (so that a step added to continue the run
        later finds what is trained)."""
        return self.runs / self.chain(name)[0]

    def bundle(self, name: str) -> Path:
        return self.run_dir(name) / "bundle"

    def overrides(self, name: str) -> list[str]:
        """The step's own overrides as it runs them: references made bundle paths, a smoke run's scaling, its run
        folder."""
        smoke = self._smoke_overrides(name) if self.smoke else []
        return self._own(name) + smoke + self.everywhere + [f"train.run_dir={self.run_dir(name)}"]

    def _own(self, name: str) -> list[str]:
        return [REFERENCE.sub(lambda m: str(self.bundle(m.group(1))), o) for o in self.steps[name].overrides]

    def _smoke_overrides(self, name: str) -> list[str]:
        """A smoke run's changes to a step: its step counts / 1000 (0 stays 0, anything else at least 1; every
        phase the real run reaches keeps a step; a continuation's max_steps above the step it continues, and its
        thresholds at that step's end where the real ones are), and, where a run starts, :data:`SMOKE`."""
        chain, real = self.chain(name), self.plain(name).train
        scaled = {k: _scaled(k, getattr(real, k)) for k in SCALED if getattr(real, k) is not None}
        phases = real.vae_steps + real.discriminator_warmup_len
        if real.max_steps > phases:  # the real run reaches the adversarial phase: so does the smoke run
            scaled["max_steps"] = max(scaled["max_steps"], scaled["vae_steps"] + scaled["discriminator_warmup_len"] + 1)
        if len(chain) == 1:
            return SMOKE + [f"train.{k}={v}" for k, v in scaled.items()]
        before_real, before = self.plain(chain[-2]).train.max_steps, self.resolved(chain[-2]).train.max_steps
        scaled = {k: before if getattr(real, k) == before_real else v for k, v in scaled.items()}
        scaled["max_steps"] = max(scaled["max_steps"], before + 1)
        own = {o.split("=", 1)[0] for o in self.steps[name].overrides}  # only what the continuation changes
        return [f"train.{k}={v}" for k, v in scaled.items() if k == "max_steps" or f"train.{k}" in own]

    def plain(self, name: str):
        """The step's config without a smoke run's scaling (what the recipe says)."""
        from .config import load_config

        return load_config(self.steps[name].config, [o for step in self.chain(name) for o in self._own(step)])

    def resolved(self, name: str):
        """The config the step trains with: its run's config with the overrides of every step of that run so far
        (a continued run keeps the stored config of the steps before it)."""
        from .config import load_config

        if name not in self._resolved:  # (a smoke run's scaling reads the step before: computed once each)
            self._resolved[name] = load_config(self.steps[name].config,
                                               [o for step in self.chain(name) for o in self.overrides(step)])  # fmt: skip
        return self._resolved[name]

    def needs(self, name: str) -> list[str]:
        """The steps ``name`` needs, itself included, in the recipe's order."""
        wanted, todo = set(), [name]
        while todo:
            step = todo.pop()
            if step not in wanted:
                wanted.add(step)
                todo += self.chain(step) + [r for o in self.steps[step].overrides for r in REFERENCE.findall(o)]
        return [s for s in self.steps if s in wanted]

    def _check_continuation(self, name: str) -> None:
        resumes = self.steps[name].resumes  # (checked as the recipe says: a smoke run's bump would hide it)
        if resumes and self.plain(name).train.max_steps <= self.plain(resumes).train.max_steps:
            raise ConfigError(f"step '{name}' of {self.path} continues '{resumes}' without raising train.max_steps: "
                              "it would train nothing.")  # fmt: skip

    def stored_differs(self, name: str) -> str | None:
        """Where the config stored in the step's run folder differs from every config of the run's steps (a recipe or
        config edited since the run trained), as "KEY: stored A, recipe B"; None when it is one of them or absent."""
        from .config import load_config
        from .training.runner import comparable_keys, first_difference

        stored = self.run_dir(name) / "config.yaml"
        if not stored.is_file():
            return None
        have = comparable_keys(load_config(stored))
        run = self.run_dir(name)  # every step of the run: the stored config is the last one that started
        wants = [comparable_keys(self.resolved(step)) for step in self.steps if self.run_dir(step) == run]
        if have in wants:
            return None
        want = next((w for w in wants if w.get("train.max_steps") == have.get("train.max_steps")), wants[-1])
        return first_difference(have, want, "recipe")

    def _check_inputs(self, name: str) -> None:
        train = self.resolved(name).train
        made = {str(self.bundle(s)) for s in self.steps if s != name}
        for key in INPUTS:
            value = getattr(train, key)
            if value and str(value) not in made:
                raise ConfigError(
                    f"step '{name}' of {self.path} reads train.{key}={value}, which no step of the recipe makes: "
                    f"set it to {{STEP}}, the step whose bundle it needs."
                )


def _scaled(key: str, value: int) -> int:
    """A step count of a smoke run: / 1000, 0 kept (no phase, no ramp), anything else at least 1 (a decay may
    start at 0)."""
    return value // 1000 if key == "lr_decay_start" or value == 0 else max(1, value // 1000)


def _read(path: Path) -> dict:
    if path.is_dir():
        raise ConfigError(f"recipe {path} is a folder; give a recipe file, such as configs/recipes/shipped.yaml.")
    if not path.is_file():
        raise ConfigError(f"recipe {path} does not exist.")
    doc = read_yaml(path) or {}
    if not isinstance(doc, dict) or set(doc) - KEYS:
        raise ConfigError(f"{path} may only have the keys {', '.join(sorted(KEYS))}.")
    _check_shape(doc, path)
    return doc


def _check_shape(doc: dict, path: Path) -> None:
    """Each key of a recipe holds the kind of value the recipe reads from it (names and commands as text), so that
    a wrong one is a sentence naming the key rather than a failure wherever it is first used."""
    steps = doc.get("steps")
    if not isinstance(steps, dict) or not steps or not all(isinstance(name, str) for name in steps):
        raise ConfigError(f"{path} needs 'steps': a mapping of step names to a config (or a run to resume) each.")
    if not isinstance(doc.get("runs") or "", str):
        raise ConfigError(f"'runs' in {path} must be the folder the steps' runs go in, not {doc['runs']!r}.")
    for key, what in (("data", "each data folder to the command line that makes it"),
                      ("targets", "each bundle's name to the name of the step that makes it")):  # fmt: skip
        value = doc.get(key) or {}
        if not isinstance(value, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
            raise ConfigError(f"'{key}' in {path} must map {what}.")


# ---------------------------------------------------------------------------------------------------------- running
def state(recipe: Recipe, name: str) -> str:
    """Where a step stands: refused (its run folder holds a run of another config, which :func:`run_step` will not
    reuse: the dry run says so rather than "done"), trained, half-trained (its run resumes) or not started."""
    from .training.runner import finished

    differs = recipe.stored_differs(name)
    if differs:
        return f"refused, its run was trained with another config: {differs}"
    run_dir, steps = recipe.run_dir(name), recipe.resolved(name).train.max_steps
    if finished(run_dir, steps):
        return "done"
    return "resumes" if (run_dir / "checkpoints" / "last.ckpt").is_file() else "to train"


def _data_argv(root: str, command: str, path: Path) -> list[str]:
    """A data folder's command as argv; one that cannot be split, or that does not name the folder as one of its
    arguments (where it writes: the recipe replaces that argument to make the folder aside), is refused."""
    try:
        argv = shlex.split(command)
    except ValueError as e:  # an unbalanced quote, a trailing backslash
        raise ConfigError(f"the command for data folder {root} in {path} is not a command line ({e}).") from None
    if root not in argv:
        raise ConfigError(f"the command for data folder {root} in {path} must name that folder (its output) as one of "
                          "its arguments.")  # fmt: skip
    return argv


def _data_command(recipe: Recipe, root: str, out: Path) -> list[str]:
    """The recipe's command for a data folder, writing to ``out`` instead: only an argument that is the folder changes
    (another may merely contain its name, a soundfont's path); ``python`` or ``python3`` is this interpreter (the
    venv's, where vaedemo is installed)."""
    argv = [str(out) if a == root else a for a in _data_argv(root, recipe.data[root], recipe.path)]
    return [sys.executable, *argv[1:]] if argv[0] in PYTHONS else argv


def _run_data_command(recipe: Recipe, root: str, out: Path) -> None:
    """Run a data folder's command to make it in ``out``; its failing to start, failing or making nothing is one
    sentence."""
    try:
        code = subprocess.run(_data_command(recipe, root, out)).returncode
    except OSError as e:  # no such program, or not executable
        raise DataError(f"the command for data folder {root} in {recipe.path} could not start ({e.filename}: "
                        f"{e.strerror}).") from None  # fmt: skip
    if code != 0:
        raise VaedemoError(f"making {root} failed; see its output above.")
    if not out.is_dir():  # it ran, but wrote elsewhere or nothing: there is nothing to move into place
        raise DataError(f"the command for data folder {root} in {recipe.path} finished without making it (it runs "
                        f"with {out} in place of {root}, moved into place when whole).")  # fmt: skip


def data_to_make(recipe: Recipe, names: list[str]) -> list[str]:
    """The data folders the steps read that do not exist yet, in the order the steps read them."""
    return [r for r in dict.fromkeys(recipe.resolved(name).data.root for name in names) if not Path(r).is_dir()]


def make_data(recipe: Recipe, names: list[str]) -> None:
    """Run the recipe's command for each data folder the steps read that does not exist yet."""
    for root in data_to_make(recipe, names):
        if root not in recipe.data:
            raise VaedemoError(f"data folder {root} does not exist and {recipe.path} has no command that makes it.")
        print(f"[recipe] {root}: {recipe.data[root]}", file=sys.stderr)
        partial = Path(root).with_name(Path(root).name + ".partial")  # made aside, moved into place whole: a crash
        shutil.rmtree(partial, ignore_errors=True)  # leaves no half folder (beside it: "data/d/" is the folder data/d)
        _run_data_command(recipe, root, partial)
        try:
            partial.rename(root)
        except OSError as e:
            raise DataError(f"the data folder {root} made as {partial} could not be moved into place ({e.strerror}).") from None


def refuse_another_config(recipe: Recipe, name: str) -> None:
    """A step whose run folder holds a run of another config (a recipe or config edited since) is refused: its run
    would be neither reused nor resumed."""
    differs = recipe.stored_differs(name)
    if differs:
        raise VaedemoError(f"{recipe.run_dir(name)} was trained with another config than step '{name}' of "
                           f"{recipe.path} gives ({differs}); move it away to train that step again.")  # fmt: skip


def run_step(recipe: Recipe, name: str) -> Path:
    from .training.runner import finished, train_to_completion

    run_dir, steps = recipe.run_dir(name), recipe.resolved(name).train.max_steps
    refuse_another_config(recipe, name)
    if not finished(run_dir, steps) and recipe.steps[name].resumes and not (run_dir / "checkpoints" / "last.ckpt").is_file():
        raise VaedemoError(f"step '{name}' continues the run in {run_dir}, which holds no last.ckpt.")
    return train_to_completion(recipe.steps[name].config, recipe.overrides(name), "recipe", name, max_steps=steps)


def record(bundle: Path, command: str) -> None:
    """Write the recipe's command into a bundle's card (its weights and files stay as they are)."""
    from .bundle import load, save_bundle

    made = load(bundle)
    save_bundle(made.model, bundle, {**made.meta, "recipe": command}, made.training, own_folder=True)  # a run's own


def steps_for(recipe: Recipe, targets: list[str]) -> list[str]:
    """The steps that make ``targets``, in the recipe's order. A recipe without targets runs every step: its steps
    are then all it asks for (a chain tried out before its bundles are named), and doing nothing, which is all
    "every target" could mean, would look like success."""
    if not recipe.targets:
        return list(recipe.steps)
    wanted = {step for target in targets for step in recipe.needs(recipe.targets[target])}
    return [s for s in recipe.steps if s in wanted]


@user_errors
def main(argv: list[str] | None = None) -> int:
    from .training.runner import train_command

    parser = argparse.ArgumentParser(prog="python -m vaedemo.recipe", description=__doc__.split("\n\n")[0])
    parser.add_argument("recipe", help="configs/recipes/NAME.yaml")
    parser.add_argument("--target", action="append",
                        help="the bundle to make (repeatable; default: every target; without targets: every step)")
    parser.add_argument("--dry-run", action="store_true", help="print each step's command and state; run nothing")
    parser.add_argument("--smoke", action="store_true",
                        help="run the chain scaled down (step counts / 1000, 12 files) in RUNS-smoke: minutes, not hours")
    parser.add_argument("--set", dest="everywhere", action="append", default=[], metavar="KEY=VALUE",
                        help="an override of every step, after its own (repeatable), e.g. data.root=/path/to/sounds "
                             "to train the chain on your own data; needs --runs")  # fmt: skip
    parser.add_argument("--runs", help="the folder the steps' runs go in (default: the recipe's 'runs')")
    args = parser.parse_args(argv)
    if args.everywhere and not args.runs:
        raise ConfigError("--set changes every step's run: name a folder of their own with --runs DIR (the recipe's "
                          "runs would be refused, or reused where they were trained with the same value).")  # fmt: skip
    bad = next((o for o in args.everywhere if "=" not in o), None)
    if bad is not None:
        raise ConfigError(f"--set takes KEY=VALUE, not {bad!r}.")
    managed = next((o.split("=", 1)[0] for o in args.everywhere if o.split("=", 1)[0].strip() in MANAGED), None)
    if managed is not None:
        raise ConfigError(f"--set {managed}: the recipe sets that key step by step (the steps' lengths, their runs and "
                          "what each reads); change it in a copy of the recipe.")  # fmt: skip
    recipe = Recipe(Path(args.recipe), smoke=args.smoke, everywhere=args.everywhere,
                    runs=Path(args.runs) if args.runs else None)  # fmt: skip
    options = "".join(f" --set {shlex.quote(o)}" for o in args.everywhere) + (
        f" --runs {shlex.quote(args.runs)}" if args.runs else "") + (" --smoke" if args.smoke else "")
    targets = args.target or list(recipe.targets)
    for target in targets:
        if target not in recipe.targets:
            raise ConfigError(f"{recipe.path} makes {', '.join(recipe.targets) or 'no target'}, not {target}.")
    names = steps_for(recipe, targets)
    for root in data_to_make(recipe, names):  # (made first)
        print(f"data {root} (to make): {recipe.data.get(root, 'the recipe has no command that makes it')}")
    for name in names:
        step = recipe.steps[name]
        argv = train_command(step.config, recipe.overrides(name), resume=step.resumes is not None)
        print(f"{name} ({state(recipe, name)}): {shlex.join(['python', *argv[1:]])}")
    if args.dry_run:
        return 0
    for name in names:  # every step before the first one trains: not hours in, when the chain reaches it
        refuse_another_config(recipe, name)
    make_data(recipe, names)
    for name in names:
        run_step(recipe, name)
    for target in targets:
        bundle = recipe.bundle(recipe.targets[target])
        record(bundle, shlex.join(["python", "-m", "vaedemo.recipe", str(recipe.path), "--target", target]) + options)
        print(f"{target}: {bundle}")
    if not recipe.targets:  # no target names the bundles: each run's, by the step it ends with
        for name in (n for n in names if n not in recipe.continued_by):
            print(f"{name}: {recipe.bundle(name)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
