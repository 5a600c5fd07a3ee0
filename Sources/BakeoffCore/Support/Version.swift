/// Bakeoff's version, for `--version` and what the tool writes elsewhere (spans, tracking runs).
public enum BakeoffVersion {
    public static let current = "0.1.0"
}
