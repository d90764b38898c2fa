// PIN entry: an on-screen keypad plus the physical keyboard, into a password field (dots, never the digits).
// The value lives only in the input element until submit, then it is handed to the callback and the field is cleared.
"use strict";
(function () {
  const FORMATS = {
    auth_pin: { pattern: /^[0-9]{4}$/, alpha: false, min: 4, max: 4,
      ja: "利用者証明用電子証明書の暗証番号", en: "Authentication PIN", hintJa: "数字4桁", hintEn: "4 digits" },
    residence_pin: { pattern: /^[0-9]{4}$/, alpha: false, min: 4, max: 4,
      ja: "住民基本台帳用の暗証番号", en: "Residence registry PIN", hintJa: "数字4桁", hintEn: "4 digits" },
    text_pin: { pattern: /^[0-9]{4}$/, alpha: false, min: 4, max: 4,
      ja: "券面事項入力補助用の暗証番号", en: "Card-text PIN", hintJa: "数字4桁", hintEn: "4 digits" },
    sign_password: { pattern: /^[A-Z0-9]{6,16}$/, alpha: true, min: 6, max: 16,
      ja: "署名用電子証明書のパスワード", en: "Signature password",
      hintJa: "英大文字と数字 6〜16文字", hintEn: "6 to 16 capital letters and digits" },
    code_b: { pattern: /^[0-9]{14}$/, alpha: false, min: 14, max: 14,
      ja: "照合番号B", en: "Verification code B",
      hintJa: "生年月日（和暦の年月日6桁）＋カードの有効期限の西暦年（4桁）＋セキュリティコード（4桁）",
      hintEn: "birth date (6 digits) + card expiry year (4 digits) + card security code (4 digits)" },
  };
  const ALPHA_KEYS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789".split("");

  /** Attach to the PIN screen. `onSubmit(value)` gets the entered value once it has the right format. */
  function createPinEntry({ form, input, keypad, count, submit, label }, onSubmit) {
    let format = FORMATS.auth_pin;

    function update() {
      const length = input.value.length;
      submit.disabled = !format.pattern.test(input.value);
      count.textContent = length + " / " + (format.min === format.max ? format.max : format.min + "–" + format.max)
        + " 文字 (characters)";
    }

    function press(key) {
      if (key === "clear") input.value = "";
      else if (key === "back") input.value = input.value.slice(0, -1);
      else if (input.value.length < format.max) input.value += key;
      update();
    }

    function build() {
      keypad.textContent = "";
      keypad.classList.toggle("alpha", format.alpha);
      const keys = format.alpha ? ALPHA_KEYS : ["1", "2", "3", "4", "5", "6", "7", "8", "9"];
      const add = (text, key, aria, wide) => {
        const button = document.createElement("button");
        button.type = "button";
        button.textContent = text;
        button.dataset.key = key;
        if (aria) button.setAttribute("aria-label", aria);
        if (wide) button.className = "key-wide";
        button.addEventListener("click", () => press(key));
        keypad.appendChild(button);
      };
      keys.forEach((k) => add(k, k));
      if (!format.alpha) {
        add("訂正", "back", "1文字消す backspace");
        add("0", "0");
        add("全消去", "clear", "すべて消す clear");
      } else {
        add("訂正 ⌫", "back", "1文字消す backspace", true);
        add("全消去", "clear", "すべて消す clear", true);
      }
    }

    input.addEventListener("input", () => {
      let value = input.value;
      value = format.alpha ? value.toUpperCase().replace(/[^A-Z0-9]/g, "") : value.replace(/[^0-9]/g, "");
      input.value = value.slice(0, format.max);
      update();
    });
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      if (!format.pattern.test(input.value)) return;
      const value = input.value;
      input.value = "";
      update();
      onSubmit(value);
    });

    return {
      FORMATS,
      /** Show the keypad for PIN `kind`; `labelText` [ja, en] names the field. */
      configure(kind, labelText) {
        format = FORMATS[kind] || FORMATS.auth_pin;
        input.value = "";
        input.inputMode = format.alpha ? "text" : "numeric";
        input.maxLength = format.max;
        window.JPKI.setBilingual(label, labelText[0], labelText[1]);
        build();
        update();
      },
      clear() { input.value = ""; update(); },
      focus() { input.focus(); },
    };
  }

  window.JPKI = Object.assign(window.JPKI || {}, { createPinEntry, PIN_FORMATS: FORMATS });
})();
