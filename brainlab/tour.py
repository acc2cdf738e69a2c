"""The guided teaching tour: 8 steps through the app, as data.

Each ``TourStep`` names the page that shows it (its URL path in the app's navigation),
the query params that open that page in the right state, the models the page needs,
a short plain-language explanation and one question to ask the class. The app's
tour page and ``python -m brainlab tour`` both read ``tour_steps(cohort_source)``.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlencode

from brainlab.errors import BrainlabInputError

LIVE_GAN_PAGE = "gan_live"      # the live GAN page (issue 12 section 2), when the app has it
GAN_LAB_PAGE = "gan_lab"        # where step 6 points when it does not
AGEING_COHORTS = ("lifespan",)  # sources whose ages span decades: bigger age contrasts


@dataclass(frozen=True)
class TourStep:
    """One stop of the tour and the link that opens its page in the right state."""

    number: int                          # 1..8, in teaching order
    title: str                           # what the step is about
    explanation: str                     # what the class sees, in plain language
    question: str                        # one question to ask the class
    url_path: str                        # the target page's URL path (app_pages/_catalog.py)
    params: tuple[tuple[str, str], ...]  # query params that open it, ``cohort`` first
    models: tuple[str, ...] = ()         # model types (registry keys) the page needs
    note: str = ""                       # a caveat shown beside the step, e.g. a fallback

    @property
    def query(self) -> dict[str, str]:
        """The query params as a dict (what ``st.page_link`` takes)."""
        return dict(self.params)

    def link(self, base_url: str = "http://localhost:8501") -> str:
        """The deep link: ``<base_url>/<url_path>?cohort=...&...``."""
        return f"{base_url.rstrip('/')}/{self.url_path}?{urlencode(self.params)}"


def train_command(model_type: str, cohort_source: str) -> str:
    """The CLI command that trains ``model_type`` on ``cohort_source``."""
    return f"python -m brainlab train {model_type} --cohort {cohort_source}"


def tour_steps(cohort_source: str = "hcp-ya", live_gan: bool = False) -> list[TourStep]:
    """The 8 tour steps for ``cohort_source``; ``live_gan``: the app has the live GAN page.

    On an ageing cohort (``lifespan``) the ageing steps use bigger contrasts: the age
    edit goes to full strength and the classifier step judges the brain-age model.
    """
    if not isinstance(cohort_source, str) or not cohort_source.strip():
        raise BrainlabInputError(f"tour needs a cohort source (a preset name or path); "
                                 f"found {cohort_source!r}")
    source = cohort_source.strip()
    ageing = source in AGEING_COHORTS
    span = "20 to 90 years" if ageing else "22 to 37 years"

    def step(number, title, explanation, question, url_path, models=(), note="", **params):
        pairs = (("cohort", source),) + tuple((k, str(v)) for k, v in params.items())
        return TourStep(number, title, explanation, question, url_path, pairs, tuple(models), note)

    live_note = "" if live_gan else (
        "The live GAN page is not in this app yet, so this opens the GAN lab with the trained "
        "GAN. To watch one train, run `python -m brainlab train gan --cohort " + source + "` "
        "and follow its losses.")
    return [
        step(1, "The cohort and its mean brains",
             f"Synthetic T1 brains (a phantom) of people aged {span}, with known true effects. "
             "Scroll through one subject, then the average brain of each sex and age bin.",
             "What differs between the women's and the men's mean brain: shape, or size?",
             "cohort", feature="ventricles_cc" if ageing else "icv_cc"),
        step(2, "Sex and age difference maps, beside the truth",
             "Under Sex and age effects, the observed mean difference sits beside the "
             "phantom's true effect map: switch between M − F and oldest − youngest. "
             + ("Across 70 years of ageing the ventricles and sulci widen clearly."
                if ageing else "In young adults ageing is small; sex (head size) dominates."),
             "Where does the observed map disagree with the truth, and why (noise, "
             "confounds, small groups)?", "cohort", effect="age" if ageing else "sex"),
        step(3, "Autoencoder reconstructions and what they lose",
             "An autoencoder squeezes each brain through a small code and rebuilds it. "
             "Compare original and reconstruction on subjects it never trained on.",
             "What is lost first: edges, small structures, or contrast? Why those?",
             "reconstructions", ("mri-ae",), subjects="test"),
        step(4, "The latent space, coloured by age and sex",
             "Each subject is a point: its autoencoder code projected to 2D. Colour by age, "
             "then by sex, and press Run probes to see how well simple models read them back.",
             "If the map shows no clear age gradient, can the code still encode age? "
             "What does the probe table say?",
             "latent_space", ("mri-ae",), rep="mri-ae", proj="pca", dims=2, colour="age"),
        step(5, "GAN samples and their quality against baselines",
             "A small GAN generates autoencoder codes; the decoder turns them into brains. "
             "Its quality line reads the card: the Fréchet distance beside a plain Gaussian "
             "fitted to the same codes and decoded by the same decoder (held-out real "
             "brains score 1.0).",
             "Does the GAN beat the Gaussian? If not, what would a GAN need to beat it here?",
             "gan_lab", ("gan",), seed=0, n=8),
        step(6, "Watching the GAN learn",
             "Generator and discriminator train live: real and generated codes in one map, "
             "the discriminator's opinion behind them. Play, pause, and try a bad "
             "learning rate on purpose." if live_gan else
             "How the GAN was trained: its card, its quality against the Gaussian baseline, "
             "and the samples it makes now.",
             "What would mode collapse look like in the map and in the samples?" if live_gan
             else "What would mode collapse look like in the samples?",
             LIVE_GAN_PAGE if live_gan else GAN_LAB_PAGE, ("mri-ae",) if live_gan else ("gan",),
             note=live_note),
        step(7, "Interpolation, and an age edit with its check",
             "The GAN lab's Interpolation section walks from one synthetic brain to "
             "another; then switch to its Attribute directions section, push one along the "
             "age direction and see whether the brain-age model agrees that it aged."
             + (" Full strength: decades of ageing." if ageing else ""),
             "Does the edit change only age, or also sex and head size?",
             "gan_lab", ("gan", "encoder", "sex-clf", "age-model"), section="walk", ends="seeds",
             method="slerp",
             frames=8, attribute="age", conditional=1, strength=3.0 if ageing else 2.0),
        step(8, "Classifiers on real vs synthetic brains",
             ("The brain-age model on real brains and on GAN samples: do samples span the "
              "real ages? The shipped GAN learned young adults (hcp-ya) unless you train one "
              "on this cohort." if ageing else
              "The sex classifier on real brains and on GAN samples. The model's caption "
              "gives its test figures beside logistic regression on head size (ICV) alone, "
              "on the same split.")
             + " A two-sample test asks whether samples can be told from real brains.",
             "Does the CNN beat head size alone? What could it use besides head size?"
             if not ageing
             else "If samples fool the classifier, are they realistic?",
             "classifiers", ("age-model" if ageing else "sex-clf", "gan"),
             model="age-model" if ageing else "sex-clf", n=64, seed=0),
    ]
