// The task classifier: counts features of the prompt and picks the task with the most evidence;
// see task.hpp. Every rule is a list below, so `why` can name the one that decided.
#include "policies/task.hpp"

#include <algorithm>
#include <array>
#include <bitset>
#include <cctype>
#include <span>
#include <stdexcept>
#include <unordered_map>
#include <vector>

namespace meridian::policies {

namespace {

constexpr std::array<std::pair<std::string_view, task>, 6> k_tasks{
    {{"code", task::code},
     {"math", task::math},
     {"translation", task::translation},
     {"long_context", task::long_context},
     {"tool_use", task::tool_use},
     {"chat", task::chat}}};

// Evidence, as whole lowercase ASCII words and as substrings (Chinese, symbols), in two
// weights: a strong mark (a language, a tool, a formula) counts 2, a weak one 1.
constexpr std::string_view k_code_strong_words[] = {
    "python",      "javascript", "typescript", "java",      "rust",       "golang",
    "kotlin",      "swift",      "php",        "ruby",      "c++",        "c#",
    "sql",         "html",       "css",        "react",     "vue",        "vue3",
    "node",        "nodejs",     "django",     "flask",     "bash",       "shell",
    "powershell",  "git",        "github",     "npm",       "pip",        "docker",
    "kubectl",     "kubernetes", "k8s",        "nginx",     "regex",      "regexp",
    "json",        "yaml",       "compile",    "compiler",  "debug",      "refactor",
    "segfault",    "traceback",  "stacktrace", "typeerror", "valueerror", "nullpointerexception",
    "pytest",      "jest",       "webpack",    "cmake",     "makefile",   "grep",
    "awk",         "sed",        "curl",       "pandas",    "numpy",      "dataframe",
    "postgres",    "postgresql", "mysql",      "sqlite",    "redis",      "mongodb",
    "stdout",      "stderr",     "printf",     "println",   "dockerfile", "vim",
    "div",         "uint64",     "int64",      "int32",     "nullptr",    "async",
    "await",       "lambda",     "struct",     "enum",      "boolean",    "deployment",
    "statefulset", "api",        "endpoint",   "lru",       "cli",        "linux",
    "unittest",    "repo",       "webhook",    "ci",        "workflow",   "pipefail",
    "sudo",        "chmod",      "localhost",  "http",      "https"};
constexpr std::string_view k_code_weak_words[] = {
    "def",    "class",     "function",  "func",      "return",    "import",      "include",
    "const",  "let",       "var",       "void",      "int",       "null",        "bool",
    "bug",    "bugs",      "exception", "runtime",   "syntax",    "variable",    "array",
    "method", "methods",   "library",   "framework", "frontend",  "backend",     "query",
    "select", "script",    "code",      "coding",    "program",   "programming", "commit",
    "merge",  "console",   "iterator",  "recursion", "recursive", "deploy",      "undefined",
    "bytes",  "implement", "cache",     "server",    "database",  "thread",      "string",
    "parse",  "compose",   "container", "index",     "error"};
constexpr std::string_view k_code_marks[] = {  // substrings, ASCII lowercase or Chinese
    "```",   "#include",  "=>",    "();",    "){",          ") {",    "::",       "->",
    "!=",    "==",        "/usr/", "</",     "console.log", "print(", "self.",    "this.",
    "std::", "select * ", "代码",  "函数",   "报错",        "编译",   "脚本",     "程序",
    "接口",  "正则",      "调试",  "重构",   "单元测试",    "数据库", "变量",     "数组",
    "部署",  "命令行",    "终端",  "异常",   "语法",        "前端",   "后端",     "字段",
    "查询",  "类名",      "循环",  "递归",   "内存泄漏",    "线程",   "并发",     "排序",
    "索引",  "容器",      "字节",  "服务器", "编程",        "泛型",   "批量替换", "算法",
    "链表",  "二叉树",    "哈希",  "爬虫",   "框架"};
constexpr std::string_view k_programming_languages[] = {
    "python", "javascript", "typescript", "java",  "rust",    "golang", "kotlin",
    "swift",  "php",        "ruby",       "c++",   "c#",      "sql",    "bash",
    "shell",  "html",       "css",        "scala", "haskell", "lua",    "perl"};

constexpr std::string_view k_math_strong_words[] = {
    "solve",      "integral",    "integrate", "derivative",  "differentiate", "equation",
    "equations",  "prove",       "proof",     "probability", "theorem",       "matrix",
    "eigenvalue", "eigenvalues", "factorize", "simplify",    "variance",      "deviation",
    "polynomial", "quadratic",   "logarithm", "sqrt",        "divisible",     "remainder",
    "modulo",     "irrational",  "odds",      "geometry",    "algebra",       "calculus",
    "arithmetic", "convergence", "converge",  "inequality",  "calculate",     "compute",
    "percent",    "percentage"};
constexpr std::string_view k_math_weak_words[] = {
    "limit",  "factor",  "median",   "sum",     "product",  "interest", "triangle", "circle",
    "radius", "area",    "volume",   "angle",   "log",      "sin",      "cos",      "tan",
    "prime",  "primes",  "fraction", "average", "expected", "dice",     "vector",   "vectors",
    "series", "integer", "integers", "mod",     "chance",   "heads",    "tails",    "coin",
    "mean",   "formula", "ratio",    "root"};
constexpr std::string_view k_math_marks[] = {
    "\\frac", "\\int", "\\sum",  "\\sqrt", "\\lim", "\\cdot",   "\\pi",     "^2",   "^3",
    "x^",     "∫",     "√",      "∑",      "π",     "≤",        "≥",        "≠",    "×",
    "÷",      "²",     "³",      "dx",     "f(x)",  "how many", "how much", "计算", "求解",
    "方程",   "积分",  "导数",   "微分",   "证明",  "概率",     "等于",     "多少", "矩阵",
    "极限",   "几何",  "三角形", "面积",   "体积",  "平方",     "立方",     "利息", "利率",
    "百分之", "平均",  "方差",   "质数",   "素数",  "余数",     "分数",     "数列", "不等式",
    "求导",   "求和",  "解方程", "几个",   "几种",  "房贷",     "月供",     "周长", "半径",
    "斜率",   "期望",  "无理数", "通项",   "根号",  "等差",     "等比",     "公式", "公差",
    "首项",   "函数f", "log"};

// Languages a text may be translated into or from, and the cues that ask for it.
constexpr std::string_view k_language_names[] = {
    "english",    "chinese",   "french",   "german",     "spanish", "japanese", "korean",
    "arabic",     "dutch",     "polish",   "indonesian", "italian", "russian",  "portuguese",
    "vietnamese", "thai",      "turkish",  "hindi",      "swedish", "greek",    "hebrew",
    "mandarin",   "cantonese", "英语",     "英文",       "中文",    "汉语",     "日语",
    "日文",       "韩语",      "韩文",     "法语",       "法文",    "德语",     "西班牙语",
    "俄语",       "意大利语",  "葡萄牙语", "阿拉伯语",   "粤语",    "文言文"};
constexpr std::string_view k_translation_cues[] = {
    "translate", "translation", "translating", " into ", " in ", "word for", " say ", "render this",
    "怎么说",    "翻译",        "译成",        "译为",   "翻成", "意思",     "用"};
constexpr std::string_view k_translation_marks[] = {"translate", "translation", "翻译",   "译成",
                                                    "译为",      "翻成",        "英译中", "中译英"};

// ASCII character classes, as <cctype> has them in the "C" locale, without a call per byte.
constexpr bool is_lower(unsigned char c) {
  return c >= 'a' && c <= 'z';
}
constexpr bool is_upper(unsigned char c) {
  return c >= 'A' && c <= 'Z';
}
constexpr bool is_alpha(unsigned char c) {
  return is_lower(c) || is_upper(c);
}
constexpr bool is_digit(unsigned char c) {
  return c >= '0' && c <= '9';
}
constexpr bool word_char(unsigned char c) {
  return is_alpha(c) || is_digit(c) || c == '_' || c == '+' || c == '#';
}

// The substring lists, all counted in one pass over the text (which mark lists are counted).
enum mark_list : std::size_t {
  code_marks,
  math_marks,
  translation_marks,
  language_names,
  translation_cues,
  mark_lists
};

// How many distinct marks of each list occur in a text, in one pass: the marks are indexed by
// their first two bytes, with a 64 Ki-bit filter so that most positions cost one bit test, and
// the index is one sorted array (no per-call allocation).
class mark_set {
 public:
  using counts = std::array<int, mark_lists>;
  mark_set() {
    add(code_marks, k_code_marks);
    add(math_marks, k_math_marks);
    add(translation_marks, k_translation_marks);
    add(language_names, k_language_names);
    add(translation_cues, k_translation_cues);
    std::sort(index_.begin(), index_.end());
    for (std::size_t i = 0; i < index_.size(); ++i) {  // each key's run of the index
      std::size_t h = hash(index_[i].key);
      while (slots_[h].used && slots_[h].key != index_[i].key) h = (h + 1) % k_slots;
      if (!slots_[h].used) slots_[h] = {index_[i].key, static_cast<std::uint16_t>(i), 0, true};
      slots_[h].end = static_cast<std::uint16_t>(i + 1);
    }
  }
  counts count(std::string_view text) const {
    counts n{};
    std::bitset<k_max_marks> seen;
    for (std::size_t i = 0; i + 1 < text.size(); ++i) {
      const auto key = key_of(text.substr(i, 2));
      if (!(filter_[key / 64] >> (key % 64) & 1)) continue;
      const slot& at = slot_of(key);
      for (auto it = index_.begin() + at.begin; it != index_.begin() + at.end; ++it)
        if (!seen[it->mark] &&
            text.compare(i, marks_[it->mark].text.size(), marks_[it->mark].text) == 0) {
          seen[it->mark] = true;
          ++n[marks_[it->mark].list];
        }
    }
    return n;
  }

 private:
  static constexpr std::size_t k_max_marks = 512;
  static constexpr std::size_t k_slots = 1024;  // open addressing: more than twice the keys
  struct slot {
    std::uint16_t key = 0, begin = 0, end = 0;
    bool used = false;
  };
  static std::size_t hash(std::uint16_t key) { return (key * 40503u >> 6) % k_slots; }
  // Only called for a key the filter holds, so the probe always ends at its slot.
  const slot& slot_of(std::uint16_t key) const {
    std::size_t h = hash(key);
    while (slots_[h].key != key || !slots_[h].used) h = (h + 1) % k_slots;
    return slots_[h];
  }
  struct mark {
    std::string_view text;
    mark_list list;
  };
  struct entry {
    std::uint16_t key;
    std::uint16_t mark;
    bool operator<(const entry& o) const { return key != o.key ? key < o.key : mark < o.mark; }
  };
  template <std::size_t N>
  void add(mark_list list, const std::string_view (&texts)[N]) {
    for (auto t : texts) {
      const auto key = key_of(t);
      filter_[key / 64] |= std::uint64_t{1} << (key % 64);
      index_.push_back({key, static_cast<std::uint16_t>(marks_.size())});
      marks_.push_back({t, list});
    }
    if (marks_.size() > k_max_marks) throw std::logic_error("mark_set: too many marks");
  }
  static std::uint16_t key_of(std::string_view s) {  // every mark has at least two bytes
    return static_cast<std::uint16_t>(static_cast<unsigned char>(s[0]) << 8 |
                                      static_cast<unsigned char>(s.size() > 1 ? s[1] : 0));
  }
  std::vector<mark> marks_;
  std::vector<entry> index_;
  std::array<std::uint64_t, 1024> filter_{};
  std::array<slot, k_slots> slots_{};
};

mark_set::counts count_marks(std::string_view text) {
  static const mark_set set;
  return set.count(text);
}

// Each word's evidence in one hash lookup, built once from the lists above.
enum word_class : unsigned {
  code_strong = 1,
  code_weak = 2,
  math_strong = 4,
  math_weak = 8,
  programming_language = 16
};

// No listed word is shorter or longer (checked where the table is built): others skip the lookup.
constexpr std::size_t k_shortest_word = 2, k_longest_word = 20;

const std::unordered_map<std::string_view, unsigned>& word_classes() {
  static const auto table = [] {
    std::unordered_map<std::string_view, unsigned> t;
    auto put = [&](std::span<const std::string_view> words, unsigned c) {
      for (auto w : words) {
        if (w.size() < k_shortest_word || w.size() > k_longest_word)
          throw std::logic_error("task classifier: a word outside the lookup's length bounds");
        t[w] |= c;
      }
    };
    put(k_code_strong_words, code_strong);
    put(k_code_weak_words, code_weak);
    put(k_math_strong_words, math_strong);
    put(k_math_weak_words, math_weak);
    put(k_programming_languages, programming_language);
    return t;
  }();
  return table;
}

// Digit, operator, digit (or a variable): "3x+5=20", "12*7", "2^10".
int arithmetic(std::string_view t) {
  int n = 0;
  for (std::size_t i = 1; i + 1 < t.size(); ++i) {
    const char c = t[i];
    if (c != '+' && c != '-' && c != '*' && c != '/' && c != '=' && c != '^') continue;
    std::size_t l = i, r = i + 1;
    while (l > 0 && t[l - 1] == ' ') --l;
    while (r < t.size() && t[r] == ' ') ++r;
    if (l == 0 || r >= t.size()) continue;
    const bool left = is_digit(static_cast<unsigned char>(t[l - 1])) || t[l - 1] == ')' ||
                      (t[l - 1] >= 'a' && t[l - 1] <= 'z' &&
                       (l < 2 || !is_alpha(static_cast<unsigned char>(t[l - 2]))));
    const bool right = is_digit(static_cast<unsigned char>(t[r])) || t[r] == '(';
    if (left && right) ++n;
  }
  return n;
}

struct script_counts {
  std::size_t han = 0, kana = 0, hangul = 0, words = 0;  // words: Latin, of two letters or more
  std::size_t units() const { return han + kana + hangul + words; }
};

// Letters by script, outside code fences and `inline code` (identifiers are not the language).
script_counts scripts(std::string_view s) {
  script_counts out;
  bool fence = false, inline_code = false;
  std::size_t letters = 0;  // of the Latin word being read
  for (std::size_t i = 0; i < s.size();) {
    if (s[i] == '`' && s.compare(i, 3, "```") == 0) {
      fence = !fence;
      i += 3;
      continue;
    }
    const auto c = static_cast<unsigned char>(s[i]);
    if (c == '`') inline_code = !inline_code;
    std::size_t len = c < 0x80         ? 1
                      : (c >> 5) == 6  ? 2
                      : (c >> 4) == 14 ? 3
                      : (c >> 3) == 30 ? 4
                                       : 1;
    if (i + len > s.size()) break;
    std::uint32_t cp = c;
    if (len == 2) cp = ((c & 0x1Fu) << 6) | (static_cast<unsigned char>(s[i + 1]) & 0x3Fu);
    if (len == 3)
      cp = ((c & 0x0Fu) << 12) | ((static_cast<unsigned char>(s[i + 1]) & 0x3Fu) << 6) |
           (static_cast<unsigned char>(s[i + 2]) & 0x3Fu);
    if (len == 4)
      cp = ((c & 0x07u) << 18) | ((static_cast<unsigned char>(s[i + 1]) & 0x3Fu) << 12) |
           ((static_cast<unsigned char>(s[i + 2]) & 0x3Fu) << 6) |
           (static_cast<unsigned char>(s[i + 3]) & 0x3Fu);
    const bool latin = len == 1 && is_alpha(c);
    if (!latin) {
      if (letters >= 2) ++out.words;
      letters = 0;
    }
    if (!fence && !inline_code) {
      if ((cp >= 0x4E00 && cp <= 0x9FFF) || (cp >= 0x3400 && cp <= 0x4DBF)) ++out.han;
      if (cp >= 0x3040 && cp <= 0x30FF) ++out.kana;
      if (cp >= 0xAC00 && cp <= 0xD7AF) ++out.hangul;
      if (latin) ++letters;
    }
    i += len;
  }
  if (letters >= 2) ++out.words;
  return out;
}

// The language the user writes in: that of the instruction, which is what comes before the
// first colon when there is one ("翻译：I'm late" is Chinese, "Translate: 你好" English). A Han
// character weighs about half a Latin word, so English names and errors in a Chinese sentence
// keep it Chinese.
std::string_view language_of(std::string_view text) {
  std::size_t colon = std::min(text.find(':'), text.find("："));
  script_counts sc;
  if (colon != std::string_view::npos) sc = scripts(text.substr(0, colon));
  if (sc.units() < 2) sc = scripts(text);
  if (sc.kana > 0) return "ja";
  if (sc.hangul > 0 && sc.hangul * 2 >= sc.words) return "ko";
  if (sc.han > 0 && sc.han * 2 >= sc.words) return "zh";
  if (sc.words > 0) return "en";
  return {};
}

}  // namespace

std::string_view to_string(task t) {
  for (const auto& [name, value] : k_tasks)
    if (value == t) return name;
  return "chat";
}

std::optional<task> parse_task(std::string_view text) {
  for (const auto& [name, value] : k_tasks)
    if (name == text) return value;
  return std::nullopt;
}

task_guess classify_task(std::string_view text, bool has_tools, std::uint64_t prompt_tokens) {
  text = text.substr(0, k_task_sample);
  task_guess out;
  std::string t(text);
  std::transform(t.begin(), t.end(), t.begin(), [](unsigned char c) {
    return is_upper(c) ? static_cast<char>(c - 'A' + 'a') : static_cast<char>(c);
  });

  out.language = language_of(text);

  int code = 0, math = 0, languages_named = 0;
  const auto& classes = word_classes();
  for (std::size_t i = 0; i < t.size();) {
    if (!word_char(static_cast<unsigned char>(t[i]))) {
      ++i;
      continue;
    }
    std::size_t j = i;
    while (j < t.size() && word_char(static_cast<unsigned char>(t[j]))) ++j;
    const std::string_view w(t.data() + i, j - i);
    unsigned c = 0;
    if (w.size() >= k_shortest_word && w.size() <= k_longest_word)
      if (const auto found = classes.find(w); found != classes.end()) c = found->second;
    code += (c & code_strong) ? 2 : (c & code_weak) ? 1 : 0;
    math += (c & math_strong) ? 2 : (c & math_weak) ? 1 : 0;
    if (c & programming_language) ++languages_named;
    // snake_case, camelCase and call syntax are identifiers: code.
    if (w.find('_') != std::string_view::npos && w.size() > 2 && w.front() != '_' &&
        is_alpha(static_cast<unsigned char>(w.front())))
      code += 2;
    if (j < t.size() && t[j] == '(' && w.size() > 1 && is_alpha(static_cast<unsigned char>(w[0])) &&
        j + 1 < t.size() && t[j + 1] != ' ' && !(c & (math_weak | math_strong)))
      code += 2;
    i = j;
  }
  for (std::size_t i = 1; i < text.size(); ++i)  // camelCase in the original case
    if (is_lower(static_cast<unsigned char>(text[i - 1])) &&
        is_upper(static_cast<unsigned char>(text[i])) && i + 1 < text.size() &&
        is_lower(static_cast<unsigned char>(text[i + 1]))) {
      code += 1;
      break;
    }
  const auto marks = count_marks(t);
  code += 2 * marks[code_marks];
  const bool fenced = t.find("```") != std::string::npos;
  if (fenced) code += 3;
  if (!fenced && std::count(t.begin(), t.end(), '`') >= 2) code += 2;  // `inline code`
  math += 2 * marks[math_marks] + 2 * arithmetic(t);
  // "17%" or "3/8": numbers with a percent or a fraction
  for (std::size_t i = 1; i < t.size(); ++i)
    if (t[i] == '%' && is_digit(static_cast<unsigned char>(t[i - 1]))) {
      math += 2;
      break;
    }
  int translation = 3 * marks[translation_marks];
  if (translation == 0 && marks[language_names] > 0 && marks[translation_cues] > 0) translation = 3;
  // Translating code between languages is code; translating text is translation.
  if (translation >= 2 && languages_named == 0 && !fenced && translation >= code) {
    out.what = task::translation;
    out.why = "a translation request";
    return out;
  }
  if (code >= 2 && code >= math) {
    out.what = task::code;
    out.why = fenced ? "a code block" : "code keywords";
    return out;
  }
  if (math >= 2) {
    out.what = task::math;
    out.why = "math keywords or formulas";
    return out;
  }
  if (prompt_tokens >= k_long_context_tokens) {
    out.what = task::long_context;
    out.why = "a long prompt";
    return out;
  }
  if (has_tools) {
    out.what = task::tool_use;
    out.why = "the request defines tools";
    return out;
  }
  out.why = "no other rule held";
  return out;
}

}  // namespace meridian::policies
