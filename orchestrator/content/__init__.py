"""What a message says: sandboxed rendering, HTML to text, HTML and wording
checks, template lint, previews."""
