"""A Gradio demo of a model trained with Modelsmith (text, image or table). Standalone: it needs no Modelsmith code.

The model files are in ./model; space.json says what the model does and how to load it.
Run it with `python app.py` (http://127.0.0.1:7860), or push this folder to a Hugging Face Space.
API names are stable, so scripts can call it with gradio_client:

    from gradio_client import Client
    client = Client("http://127.0.0.1:7860/")
    client.predict("some text", api_name="/predict")            # classifier: {"label", "confidences"}
    client.predict(handle_file("photo.jpg"), api_name="/predict")  # image classifier: the same answer
    client.predict("Once upon", 200, 0.8, 0, api_name="/generate")  # language model: prompt, tokens,
                                                                      # temperature, seed (-1 = random)
    client.predict(39, "State-gov", ..., api_name="/predict")  # table model: one value per input column,
                                                               # in the form's order (None = missing)
"""

import json
from pathlib import Path

import gradio as gr

import image_model
import table_model
import text_model

HERE = Path(__file__).resolve().parent
MODEL_DIR = HERE / "model"
SPACE = json.loads((HERE / "space.json").read_text(encoding="utf-8"))
MAX_TEXT_CHARS = 10_000
MAX_NEW_TOKENS = 500


def _card() -> str:
    """The model card below the demo (the README of the model, without its metadata block)."""
    path = MODEL_DIR / "README.md"
    text = path.read_text(encoding="utf-8") if path.is_file() else ""
    if text.startswith("---\n") and "\n---" in text[4:]:
        text = text[text.index("\n---", 4) + 4:]
    return text.strip()


def build() -> gr.Blocks:
    """The demo page: a classifier (text, image or table row) or a text generator, and the model card."""
    with gr.Blocks(title=SPACE["title"]) as demo:
        gr.Markdown(f"# {SPACE['title']}")
        if SPACE["panel"] == "image":
            classify_image = image_model.load_image_classifier(MODEL_DIR, SPACE)

            def predict_image(image) -> dict:
                """Probability of each class for one image."""
                if image is None:
                    raise gr.Error("Upload an image first.")
                return classify_image(image)

            image = gr.Image(label="Image", type="pil", sources=["upload", "clipboard", "webcam"], height=300)
            button = gr.Button("Predict", variant="primary")
            label = gr.Label(label="Prediction", num_top_classes=5)
            button.click(predict_image, image, label, api_name="predict")
        elif SPACE["panel"] == "table":
            build_table_form()
        elif SPACE["panel"] == "classify":
            classify = text_model.load_classifier(MODEL_DIR, SPACE)

            def predict(text: str) -> dict:
                """Probability of each class for one text."""
                text = text or ""
                if not text.strip():
                    raise gr.Error("Type a text to classify first.")
                return classify(text[:MAX_TEXT_CHARS])

            text = gr.Textbox(label="Text", lines=4, placeholder="Type a text to classify")
            button = gr.Button("Predict", variant="primary")
            label = gr.Label(label="Prediction", num_top_classes=5)
            button.click(predict, text, label, api_name="predict")
            text.submit(predict, text, label, api_visibility="private")
        else:
            write = text_model.load_generator(MODEL_DIR, SPACE)

            def generate(prompt: str, max_new_tokens: float = 200, temperature: float = 0.8, seed: float = -1):
                """The continuation of the prompt, streamed as it is written; a seed of 0 or more repeats a text."""
                steps = max(1, min(int(max_new_tokens or 1), MAX_NEW_TOKENS))
                temperature = max(0.0, float(temperature or 0.0))
                fixed = None if seed is None or seed < 0 else int(seed)
                text = ""
                for piece in write((prompt or "")[:MAX_TEXT_CHARS], steps, temperature, seed=fixed):
                    text += piece
                    yield text

            prompt = gr.Textbox(label="Prompt", lines=3, placeholder="Start a text; the model continues it")
            with gr.Row():
                length = gr.Slider(1, MAX_NEW_TOKENS, value=200, step=1, label="Length (tokens)")
                temperature = gr.Slider(0, 2, value=0.8, step=0.05, label="Temperature (0 = always the likeliest)")
                seed = gr.Number(value=-1, precision=0, label="Seed (-1 = a new text each time)")
            button = gr.Button("Generate", variant="primary")
            output = gr.Textbox(label="Continuation", lines=8)
            button.click(generate, [prompt, length, temperature, seed], output, api_name="generate")
        gr.Markdown(_card())
    return demo


def _blank(value) -> bool:
    return value is None or (isinstance(value, float) and value != value) or (isinstance(value, str)
                                                                              and not value.strip())


def _number(value, column: str) -> float:
    """A number box's text as a number; an error that says how to write one."""
    try:
        number = float(str(value).strip().replace(" ", ""))
    except ValueError:
        number = float("nan")
    if number != number or number in (float("inf"), float("-inf")):
        raise gr.Error(f"{str(value).strip()[:40]!r} in `{column}` is not a number: write it like 42 or 3.5, "
                       "or leave the box blank for an unknown value.")
    return number


def build_table_form() -> None:
    """One input per column of the model (a dropdown of the values seen, a number box, a date box) -> prediction."""
    transform, predict_frame = table_model.load_table_model(MODEL_DIR)
    columns = list(transform.inputs)
    kinds = [kind for _, kind, _, _ in table_model.form_fields(transform)]

    def predict(*values):
        """The class probabilities, or the predicted number, of the row filled in."""
        row = {column: None if _blank(value) else _number(value, column) if kind == "numeric" else value
               for column, kind, value in zip(columns, kinds, values)}
        output = predict_frame(table_model.pd.DataFrame([row], columns=columns, dtype=object))
        if transform.task == "classification":
            return {name: float(p) for name, p in zip(transform.classes, output[0])}
        return float(output[0])

    gr.Markdown("Fill in what you know (blank boxes count as missing), then **Predict**.")
    inputs = []
    for column, kind, choices, info in table_model.form_fields(transform):
        if choices is not None:
            inputs.append(gr.Dropdown(choices, value=None, label=column, info=info, allow_custom_value=True))
        elif kind == "numeric":
            # A text box: gr.Number shows and sends 0 for an empty value, and blank must mean missing.
            inputs.append(gr.Textbox(label=column, info=info, placeholder="a number"))
        else:
            inputs.append(gr.Textbox(label=column, info=info))
    button = gr.Button("Predict", variant="primary")
    if transform.task == "classification":
        output = gr.Label(label=f"Predicted {transform.target}", num_top_classes=5)
    else:
        output = gr.Number(label=f"Predicted {transform.target}", interactive=False)
    button.click(predict, inputs, output, api_name="predict")


demo = build()

if __name__ == "__main__":
    demo.launch()
