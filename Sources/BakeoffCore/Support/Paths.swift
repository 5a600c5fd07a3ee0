/// The folder a file path is in: "." for a bare name, "/" for a file at the root.
package func folderOf(_ path: String) -> String {
    guard let slash = path.lastIndex(of: "/") else { return "." }
    return slash == path.startIndex ? "/" : String(path[..<slash])
}
